// The baseline: a minimal Node gateway doing what the benchmark asks of Herald, with the most
// used libraries (ws + ioredis), written as a competent team would in an afternoon. Same wire
// protocol as Herald, so herald-bench drives both unchanged:
//   {"action":"subscribe","channel":C} -> {"type":"subscribed","channel":C}
//   PUBLISH herald:channel:C <json>   -> {"type":"message","channel":C,"data":<json>} to subscribers
//   POST /v1/publish {"channel","data"} on the admin port, the same
//   any other message is echoed back ($default echo).
// One serialization per publication, shared by all recipients (the fair, fast way in Node).
//   node gateway.mjs PORT ADMIN_PORT REDIS_PORT [CERT KEY]
// With CERT and KEY (PEM files) clients connect over wss:// (an https server under ws, Node's
// defaults: session tickets on).
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { WebSocketServer } from 'ws';
import Redis from 'ioredis';

const [port, adminPort, redisPort] = process.argv.slice(2, 5).map(Number);
const [certFile, keyFile] = process.argv.slice(5, 7);
const channels = new Map(); // name -> Set<ws>

function fanout(channel, dataJson) {
  const subs = channels.get(channel);
  if (!subs) return 0;
  const frame = `{"type":"message","channel":${JSON.stringify(channel)},"data":${dataJson}}`;
  for (const ws of subs) ws.send(frame);
  return subs.size;
}

let wss;
if (certFile) {
  const server = https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) });
  wss = new WebSocketServer({ server, perMessageDeflate: false });
  server.listen({ port, host: '127.0.0.1', backlog: 4096 });
} else {
  wss = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false, backlog: 4096 });
}
wss.on('connection', (ws) => {
  const mine = new Set();
  ws.on('message', (raw, isBinary) => {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      msg = null;
    }
    if (msg && msg.action === 'subscribe' && typeof msg.channel === 'string') {
      if (!channels.has(msg.channel)) channels.set(msg.channel, new Set());
      channels.get(msg.channel).add(ws);
      mine.add(msg.channel);
      ws.send(JSON.stringify({ type: 'subscribed', channel: msg.channel }));
      return;
    }
    ws.send(raw, { binary: isBinary });
  });
  ws.on('close', () => {
    for (const c of mine) {
      const subs = channels.get(c);
      subs.delete(ws);
      if (subs.size === 0) channels.delete(c);
    }
  });
  ws.on('error', () => {});
});

const sub = new Redis({ port: redisPort, host: '127.0.0.1' });
sub.psubscribe('herald:channel:*');
sub.on('pmessageBuffer', (_pattern, channel, message) => {
  fanout(channel.toString().slice('herald:channel:'.length), message.toString());
});

http
  .createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/v1/publish') {
      res.writeHead(404).end();
      return;
    }
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      try {
        const { channel, data } = JSON.parse(body);
        const n = fanout(channel, JSON.stringify(data));
        const answer = JSON.stringify({ recipients: n });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) }).end(answer);
      } catch {
        res.writeHead(400).end();
      }
    });
  })
  .listen(adminPort, '127.0.0.1', () => console.log(JSON.stringify({ event: 'baseline.started', port, adminPort })));
