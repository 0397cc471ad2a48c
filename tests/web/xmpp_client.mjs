// @xmpp/client over WebSocket in node: log in, send a chat message to PEER, wait for REPLY, print "OK <jid>".
// Usage: node xmpp_client.mjs URL DOMAIN USERNAME PASSWORD PEER BODY REPLY
import { WebSocket } from 'ws';
globalThis.WebSocket = WebSocket; // node 20 has no global WebSocket; @xmpp/websocket uses it

const { client, xml } = await import('@xmpp/client');
const [service, domain, username, password, peer, body, reply] = process.argv.slice(2);
const fail = (why) => {
  console.error(`FAIL ${why}`);
  process.exit(1);
};
setTimeout(() => fail('timed out'), 20000).unref();

const xmpp = client({ service, domain, username, password, resource: 'node' });
xmpp.on('error', (err) => fail(err?.condition ?? err?.message ?? String(err)));
xmpp.on('stanza', async (stanza) => {
  if (stanza.is('message') && stanza.getChildText('body') === reply) {
    console.log(`OK ${xmpp.jid}`);
    await xmpp.stop();
    process.exit(0);
  }
});
xmpp.on('online', async () => {
  await xmpp.send(xml('presence'));
  await xmpp.send(xml('message', { to: peer, type: 'chat' }, xml('body', {}, body)));
});
await xmpp.start().catch((err) => fail(err?.condition ?? err?.message ?? String(err)));
