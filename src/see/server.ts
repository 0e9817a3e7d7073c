/**
 * The server of `isolab see`: HTTP on 127.0.0.1 only, serving a fixed set of in-memory files
 * (the page and the recording), nothing from the file system. Its root is that set: a path is
 * served only when, percent-decoded once, it is exactly one of the names; `..`, encoded
 * separators, absolute or doubled slashes, backslashes and NUL are refused (400), anything
 * else is not found (404). Only GET and HEAD are answered (405 otherwise). A request whose
 * Host header is not the loopback address or `localhost` with the server's port is refused
 * (403), so a page of another site cannot reach it by DNS rebinding.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A file the server holds: its content and media type. */
export interface ServedFile {
  body: string | Buffer;
  type: string;
}

export interface SeeServer {
  /** http://127.0.0.1:PORT/ */
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

/**
 * Why `rawPath` (the request target's path, query removed) cannot name a served file, or null
 * when it may: it must start with one `/`, decode as UTF-8 percent-encoding, and hold no
 * backslash, NUL, `//`, or `.` or `..` segment before or after decoding, and no encoded `/`.
 */
export function badPath(rawPath: string): string | null {
  if (!rawPath.startsWith('/') || rawPath.startsWith('//')) return 'the path must start with a single /';
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    return 'the path is not valid percent-encoding';
  }
  if (/%2f|%5c/i.test(rawPath)) return 'encoded slashes are not allowed';
  for (const p of [rawPath, decoded]) {
    if (p.includes('\\') || p.includes('\0')) return 'backslashes and NUL are not allowed';
    if (p.includes('//')) return 'empty path segments are not allowed';
    if (p.split('/').some((seg) => seg === '.' || seg === '..')) return '. and .. segments are not allowed';
  }
  return null;
}

/** Answers one request from `files` (names like `/`, `/recording.json`). */
function answer(files: ReadonlyMap<string, ServedFile>, port: number, req: IncomingMessage, res: ServerResponse): void {
  const send = (status: number, text: string, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
    res.end(req.method === 'HEAD' ? undefined : text + '\n');
  };
  const host = (req.headers.host ?? '').toLowerCase();
  if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) return send(403, 'forbidden: this server answers only http://127.0.0.1 and http://localhost on its own port');
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed', { allow: 'GET, HEAD' });
  const target = req.url ?? '';
  const q = target.indexOf('?');
  const rawPath = q < 0 ? target : target.slice(0, q);
  const why = badPath(rawPath);
  if (why) return send(400, `bad request: ${why}`);
  const file = files.get(decodeURIComponent(rawPath));
  if (!file) return send(404, 'not found');
  res.writeHead(200, {
    'content-type': file.type,
    'content-length': String(Buffer.byteLength(file.body)),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
  res.end(req.method === 'HEAD' ? undefined : file.body);
}

/**
 * Serves `files` on 127.0.0.1, port `port` (0: a free one). Resolves once listening; rejects
 * with the listen error (EADDRINUSE, EACCES) otherwise.
 */
export function serveFiles(files: ReadonlyMap<string, ServedFile>, port = 0): Promise<SeeServer> {
  return new Promise((resolve, reject) => {
    let bound = port;
    const server = createServer((req, res) => answer(files, bound, req, res));
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port }, () => {
      server.off('error', reject);
      bound = (server.address() as AddressInfo).port;
      resolve({
        url: `http://127.0.0.1:${bound}/`,
        port: bound,
        server,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
  });
}
