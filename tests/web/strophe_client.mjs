// Strophe.js (node build) over BOSH or WebSocket: log in, send a chat message to PEER, wait for a reply
// whose body is REPLY, print "OK <bound jid>" and exit 0. Any failure prints it and exits 1.
// Usage: node strophe_client.mjs URL JID PASSWORD PEER BODY REPLY
import './xhr-polyfill.mjs';
import { Strophe, $msg, $pres } from 'strophe.js';

const [url, jid, password, peer, body, reply] = process.argv.slice(2);
const fail = (why) => {
  console.error(`FAIL ${why}`);
  process.exit(1);
};
setTimeout(() => fail('timed out'), 20000).unref();

const conn = new Strophe.Connection(url);
conn.addHandler(
  (msg) => {
    const text = msg.getElementsByTagName('body')[0]?.textContent;
    if (text === reply) {
      console.log(`OK ${conn.jid}`);
      conn.disconnect('done');
      setTimeout(() => process.exit(0), 500);
    }
    return true;
  },
  null,
  'message',
);
conn.connect(jid, password, (status, condition) => {
  const S = Strophe.Status;
  if (status === S.CONNECTED) {
    conn.send($pres());
    conn.send($msg({ to: peer, type: 'chat' }).c('body').t(body));
  } else if (status === S.AUTHFAIL || status === S.CONNFAIL || status === S.ERROR) {
    fail(`status ${status} ${condition ?? ''}`);
  }
});
