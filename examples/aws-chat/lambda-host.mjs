// Runs the three handlers behind HTTP the way Lambda runs them behind API Gateway: the request
// body is the event, the return value is written back as JSON (Herald's lambda-proxy mode).
// The paths are the function names of template.yaml, as `herald import-aws` wrote them into the
// integrations' URLs.
import http from 'node:http';
import { handler as onconnect } from './onconnect/app.mjs';
import { handler as ondisconnect } from './ondisconnect/app.mjs';
import { handler as sendmessage } from './sendmessage/app.mjs';

const functions = {
  '/OnConnectFunction': onconnect,
  '/OnDisconnectFunction': ondisconnect,
  '/SendMessageFunction': sendmessage,
};
const port = Number(process.env.LAMBDA_PORT ?? 3000);

http.createServer(async (req, res) => {
  const fn = functions[req.url];
  if (!fn || req.method !== 'POST') {
    res.writeHead(404).end();
    return;
  }
  let body = '';
  for await (const chunk of req) body += chunk;
  let result;
  try {
    result = await fn(JSON.parse(body));
  } catch (err) {
    console.error(`${req.url} threw:`, err);
    res.writeHead(500).end();  // as a Lambda that throws: Herald sends "Internal server error"
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(result ?? { statusCode: 200 }));
}).listen(port, '127.0.0.1', () => console.log(`lambda host on http://127.0.0.1:${port}`));
