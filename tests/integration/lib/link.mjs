import net from 'node:net';

// A TCP hop between clients and Herald that a test can cut (like a network drop) or freeze
// (packets vanish, sockets stay open: only a heartbeat notices), and repoint (like a load
// balancer sending new connections to another node).
export class Link {
  static async start(targetPort) {
    const link = new Link();
    link.targetPort = targetPort;
    link.sockets = new Set();
    link.server = net.createServer((client) => {
      const upstream = net.connect(link.targetPort, '127.0.0.1');
      const pair = { client, upstream };
      link.sockets.add(pair);
      const forward = (from, to) => from.on('data', (d) => {
        if (!pair.frozen) to.write(d);
      });
      forward(client, upstream);
      forward(upstream, client);
      const end = () => {
        client.destroy();
        upstream.destroy();
        link.sockets.delete(pair);
      };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
    await new Promise((r) => link.server.listen(0, '127.0.0.1', r));
    link.port = link.server.address().port;
    link.url = `ws://127.0.0.1:${link.port}/`;
    link.httpUrl = `http://127.0.0.1:${link.port}`;
    return link;
  }

  cut() {
    for (const { client, upstream } of this.sockets) {
      client.destroy();
      upstream.destroy();
    }
  }

  // Existing connections stop carrying bytes; new ones work.
  freezeExisting() {
    for (const pair of this.sockets) pair.frozen = true;
  }

  close() {
    this.cut();
    return new Promise((r) => this.server.close(r));
  }
}
