// A minimal webhook receiver: answers 200 to every POST and prints its port on stdout.
//   node tests/verifiers/receiver.js [PORT] [--print]
// With --print it also prints each webhook's headers and body (for the README walkthrough);
// without, it stays quiet (for benchmarks). `GET /stats` answers how many POSTs arrived and
// when the first and the last did (unix ms), and the CPU time this process used meanwhile
// (cpuMs); `DELETE /stats` starts counting again.
'use strict';
const http = require('http');
const print = process.argv.includes('--print');
const port = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) || 0);
let stats = { received: 0, firstAt: null, lastAt: null };
let cpuFrom = process.cpuUsage();
const server = http.createServer((req, res) => {
  if (req.url === '/stats' && req.method !== 'POST') {
    if (req.method === 'DELETE') {
      stats = { received: 0, firstAt: null, lastAt: null };
      cpuFrom = process.cpuUsage();
    }
    const cpu = process.cpuUsage(cpuFrom);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ...stats, cpuMs: (cpu.user + cpu.system) / 1000 }));
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const now = Date.now();
    stats.received += 1;
    stats.firstAt = stats.firstAt ?? now;
    stats.lastAt = now;
    if (print) {
      const h = req.headers;
      console.log(`${req.method} ${req.url}`);
      for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) console.log(`  ${name}: ${h[name]}`);
      console.log(`  body: ${Buffer.concat(chunks).toString('utf8')}`);
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
});
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1', () => console.log(server.address().port));
