// Redaction of command output before it reaches heartbeats, failure messages or logs. Output arrives line by
// line and tails start anywhere, so a secret spread over lines (a PEM block) is recognised by state across
// lines and, in a tail that begins inside the block, by the shape of its body lines.

const TOKEN_RE = /\b[a-z0-9]{6}\.[a-z0-9]{16}\b/g;
const HEX64_RE = /\b[a-f0-9]{64}\b/gi;
const PEM_RE = /-----BEGIN [A-Z0-9 ]+-----[\s\S]*?-----END [A-Z0-9 ]+-----/g;
const PEM_BEGIN = /-----BEGIN [A-Z0-9 ]+-----/;
const PEM_END = /-----END [A-Z0-9 ]+-----/;
const B64_BLOB_RE = /\b[A-Za-z0-9+/]{200,}={0,2}/g;
// A JSON Web Token: base64url header (always `{"` = eyJ), payload and signature.
const JWT_RE = /\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;
// A line that is nothing but base64 (PEM bodies are 64 per line, the last one shorter) or a PEM header field.
const BODY_LINE = /^\s*([A-Za-z0-9+/]{16,}={0,2}|[A-Za-z0-9+/]{1,15}={1,2}|Proc-Type: .*|DEK-Info: .*)\s*$/;

// A line of nothing but 40+ base64 characters: a key or certificate body line even without its markers.
const B64_LINE = /^\s*[A-Za-z0-9+/]{40,}={0,2}\s*$/;

function inline(text: string, secrets: readonly string[]): string {
  if (B64_LINE.test(text)) return '<redacted data>';
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('<redacted>');
  return out
    .replace(PEM_RE, '<redacted pem>')
    .replace(JWT_RE, '<redacted jwt>')
    .replace(TOKEN_RE, '<redacted token>')
    .replace(HEX64_RE, '<redacted hex>')
    .replace(B64_BLOB_RE, '<redacted data>');
}

/** Redacts a stream line by line, remembering whether it is inside a PEM block. */
export class LineRedactor {
  private inPem = false;
  private readonly secrets: string[];
  constructor(secrets: readonly string[] = []) {
    // Lines arrive one at a time, so a multi-line secret is matched line by line too; longest first.
    const parts = new Set<string>();
    for (const v of secrets) {
      if (v) parts.add(v);
      for (const l of v.split('\n')) if (l.trim().length >= 4) parts.add(l);
    }
    this.secrets = [...parts].sort((a, b) => b.length - a.length);
  }

  line(raw: string): string {
    const l = inline(raw, this.secrets);
    if (this.inPem) {
      const end = PEM_END.exec(l);
      if (!end) return '<redacted pem>';
      this.inPem = false;
      return '<redacted pem>' + l.slice(end.index + end[0].length);
    }
    const begin = PEM_BEGIN.exec(l);
    if (begin) {
      this.inPem = true;
      return l.slice(0, begin.index) + '<redacted pem>';
    }
    const end = PEM_END.exec(l);
    if (end) return '<redacted pem>' + l.slice(end.index + end[0].length);
    return l;
  }
}

/**
 * Removes anything shaped like a bootstrap token, certificate key, hash, PEM block (whole or in part), JWT or
 * embedded certificate from a text of one or more lines.
 */
export function redact(text: string, secrets: readonly string[] = []): string {
  let whole = text;
  for (const s of secrets) if (s) whole = whole.split(s).join('<redacted>');
  const r = new LineRedactor(secrets);
  const original = whole.split('\n');
  const lines = original.map((l) => r.line(l));
  // A tail can start inside a PEM block: body lines right before an END marker are part of the block.
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.startsWith('<redacted pem>') || !PEM_END.test(original[i]!)) continue;
    for (let j = i - 1; j >= 0 && BODY_LINE.test(lines[j]!); j--) lines[j] = '<redacted pem>';
  }
  return lines.join('\n');
}
