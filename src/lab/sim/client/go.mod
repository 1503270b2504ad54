module kha.dev/simclient

go 1.21
