// A minimal webhook receiver for benchmarks: answers 200 to every POST after reading the
// body, and prints its port on stdout. Run: node tests/verifiers/receiver.js
'use strict';
const http = require('http');
const server = http.createServer((req, res) => {
  req.on('data', () => {});
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
});
server.keepAliveTimeout = 60000;
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => console.log(server.address().port));
