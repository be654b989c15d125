// What a merchant's Node.js code does with our webhooks. Reads one JSON request on stdin,
// writes one JSON answer on stdout. Driven by the Rust cross-language tests.
//
//   stringify    {secret, payloads: [jsonText]}       -> [{json, hex}]   JSON.stringify + seed HMAC
//   seed-verify  {secret, bodies: [bodyText]}         -> [bool]          the seed's snippet
//   sw-verify    {secret: "whsec_..", messages: [{id, timestamp, signature, body}]} -> ["ok" | error]
//   sw-sign      {secret: "whsec_..", messages: [{id, timestamp, body}]}            -> [signature]
'use strict';
const crypto = require('crypto');
const { Webhook } = require('standardwebhooks');

const hmacHex = (secret, text) => crypto.createHmac('sha256', secret).update(text).digest('hex');

const modes = {
  stringify: ({ secret, payloads }) =>
    payloads.map((text) => {
      const json = JSON.stringify(JSON.parse(text));
      return { json, hex: hmacHex(secret, json) };
    }),
  'seed-verify': ({ secret, bodies }) =>
    bodies.map((body) => {
      const payload = JSON.parse(body);
      const signature = payload.signature;
      delete payload.signature;
      return hmacHex(secret, JSON.stringify(payload)) === signature;
    }),
  'sw-verify': ({ secret, messages }) => {
    const wh = new Webhook(secret);
    return messages.map(({ id, timestamp, signature, body }) => {
      try {
        wh.verify(body, { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signature });
        return 'ok';
      } catch (e) {
        return String(e.message || e);
      }
    });
  },
  'sw-sign': ({ secret, messages }) => {
    const wh = new Webhook(secret);
    return messages.map(({ id, timestamp, body }) => wh.sign(id, new Date(timestamp * 1000), body));
  },
};

const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const mode = modes[process.argv[2]];
  if (!mode) {
    console.error(`unknown mode ${process.argv[2]}; expected one of ${Object.keys(modes).join(', ')}`);
    process.exit(2);
  }
  process.stdout.write(JSON.stringify(mode(JSON.parse(Buffer.concat(chunks).toString('utf8')))));
});
