/**
 * The see server answers on 127.0.0.1 only and serves its own files and nothing else: `..`,
 * encoded separators, absolute-form targets, doubled slashes, backslashes and NUL are refused,
 * a foreign Host header is refused (DNS rebinding), only GET and HEAD are answered. Requests
 * are written on a raw socket so that no client normalises the path first.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { test } from 'node:test';
import { badPath, serveFiles, type ServedFile } from '../../src/see/server.js';
import { jsonInScript, renderPage } from '../../src/see/html.js';
import { fromWire, toWire, type PackedEvents } from '../../src/see/wire.js';
import { compileScenarioFile } from '../../src/scenario/index.js';
import { recordScenario } from '../../src/see/record.js';

/** Sends `request` as written and resolves with the status code and body. */
function raw(port: number, request: string, host = '127.0.0.1'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port }, () => sock.end(request));
    let data = '';
    sock.on('data', (d) => (data += d.toString('utf8')));
    sock.on('error', reject);
    sock.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data);
      resolve({ status: m ? Number(m[1]) : 0, body: data.slice(data.indexOf('\r\n\r\n') + 4) });
    });
  });
}

const get = (port: number, target: string, extra = ''): Promise<{ status: number; body: string }> =>
  raw(port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n${extra}\r\n`);

const FILES = new Map<string, ServedFile>([
  ['/', { body: '<p>page</p>', type: 'text/html' }],
  ['/recording.json', { body: '{"format":"x"}', type: 'application/json' }],
]);

test('serves its files on 127.0.0.1 and refuses every way out of its root', async () => {
  const s = await serveFiles(FILES, 0);
  try {
    assert.equal((s.server.address() as { address: string }).address, '127.0.0.1');
    assert.equal(s.url, `http://127.0.0.1:${s.port}/`);
    assert.deepEqual(await get(s.port, '/'), { status: 200, body: '<p>page</p>' });
    assert.equal((await get(s.port, '/recording.json?x=1')).status, 200);
    for (const target of ['/../package.json', '/..%2fpackage.json', '/%2e%2e/package.json', '/%2E%2E%2Fpackage.json', '/./recording.json', '//etc/passwd', '/..\\package.json', '/%5c..%5cpackage.json', '/recording.json%00', '/%zz']) {
      assert.equal((await get(s.port, target)).status, 400, target);
    }
    assert.equal((await get(s.port, 'http://127.0.0.1/etc/passwd')).status, 400, 'absolute-form target');
    assert.equal((await get(s.port, '/etc/passwd')).status, 404);
    assert.equal((await get(s.port, '/src/see/server.ts')).status, 404);
    // A page of another origin that rebinds its name to 127.0.0.1 sends its own Host.
    assert.equal((await raw(s.port, `GET / HTTP/1.1\r\nHost: evil.example:${s.port}\r\nConnection: close\r\n\r\n`)).status, 403);
    assert.equal((await raw(s.port, `GET / HTTP/1.1\r\nHost: localhost:${s.port}\r\nConnection: close\r\n\r\n`)).status, 200);
    assert.equal((await raw(s.port, `POST / HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)).status, 405);
    // Not reachable on any other address of this machine.
    const others = Object.values(networkInterfaces()).flat().filter((a) => a && a.family === 'IPv4' && !a.internal).map((a) => a!.address);
    for (const addr of others) {
      await assert.rejects(raw(s.port, `GET / HTTP/1.1\r\nHost: ${addr}\r\n\r\n`, addr), /ECONNREFUSED/, `not on ${addr}`);
    }
  } finally {
    await s.close();
  }
});

test('badPath: the rules, one by one', () => {
  assert.equal(badPath('/'), null);
  assert.equal(badPath('/recording.json'), null);
  assert.match(badPath('relative')!, /single \//);
  assert.match(badPath('/a/../b')!, /\.\./);
  assert.match(badPath('/a%2Fb')!, /encoded slashes/);
});

test('the page: the recording inline cannot end its script element; with a source, nothing inline', () => {
  const data = { format: 'isolab-see/1', scenario: { name: '</script><script>alert(1)</script>' }, events: [{ step: 1, cpu: 0, tid: 1, type: 'op', kind: 'op', text: '</script>' }] } as never;
  const page = renderPage(data, { js: 'var s="</script>";', css: 'a{}' });
  assert.equal(page.match(/<\/script>/g)!.length, 2, 'only the two script elements close');
  assert.ok(page.includes(jsonInScript(toWire(data))));
  assert.equal(JSON.parse(jsonInScript(data)).scenario.name, '</script><script>alert(1)</script>', 'the JSON still parses to the same text');
  assert.ok(!/\b(src|href)=["']?https?:/i.test(page), 'nothing fetched from the network');
  const served = renderPage(data, { js: '', css: '' }, 'recording.json');
  assert.ok(served.includes('data-src="recording.json"'));
  assert.ok(!served.includes('alert(1)</script>'));
});

test('the wire form: events packed into columns and a string table, unpacked to the same recording', () => {
  const r = recordScenario(compileScenarioFile('scenarios/fork-cow.yaml'));
  const wire = toWire(r) as { events: PackedEvents };
  assert.ok(!Array.isArray(wire.events));
  assert.ok(wire.events.strings.length < r.events.length, 'texts repeat: fewer strings than events');
  assert.ok(JSON.stringify(wire).length < JSON.stringify(r).length);
  assert.deepEqual(fromWire(JSON.parse(JSON.stringify(wire))), r);
});
