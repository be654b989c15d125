// A closed-loop HTTP load generator for docs/benchmarks.md: REQUESTS POSTs from SENDERS
// senders, each sending its next request when its last one is answered, over keep-alive
// connections (one per sender).
//   node tests/verifiers/loadgen.js URL REQUESTS [--senders 32] [--bearer KEY --merchant ID]
// With --merchant it posts platform events (a new order id each) to the local stack's
// `POST /local/events` with the bearer key; without, a webhook-sized body straight to URL.
// Prints one JSON line: requests, failed (non-2xx or errors), startedAt (unix ms), seconds,
// perSecond, and cpuMs (the CPU time this process used sending them).
'use strict';
const http = require('http');

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : fallback;
};
const [url, total] = [new URL(args[0]), Number(args[1])];
const senders = Number(option('senders', '32'));
const bearer = option('bearer', null);
const merchant = option('merchant', null);
const agent = new http.Agent({ keepAlive: true, maxSockets: senders });
const webhook = JSON.stringify({
  eventName: 'crypto_delivered',
  orderId: '5a3288ea-0bd4-44d2-af11-aae1f88bbd61',
  timeStamp: '2022-10-26T22:36:41.658Z',
  signature: 'd9e424d4a7b6e6ab2d43b17b62d1032183d19053e4c552981dd8e139962ed4da',
});

function post(n) {
  const body = merchant
    ? JSON.stringify({ merchantId: merchant, eventName: 'crypto_delivered', orderId: `order-${n}` })
    : webhook;
  const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  return new Promise((resolve) => {
    const request = http.request(url, { method: 'POST', agent, headers }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode >= 200 && response.statusCode < 300));
    });
    request.on('error', () => resolve(false));
    request.end(body);
  });
}

async function main() {
  let next = 0;
  let failed = 0;
  const startedAt = Date.now();
  const started = process.hrtime.bigint();
  const cpuFrom = process.cpuUsage();
  const sender = async () => {
    while (next < total) {
      const n = next++;
      if (!(await post(n))) failed += 1;
    }
  };
  await Promise.all(Array.from({ length: senders }, sender));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpuFrom);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  console.log(JSON.stringify({ requests: total, failed, startedAt, seconds, perSecond: total / seconds, cpuMs }));
  agent.destroy();
}

main();
