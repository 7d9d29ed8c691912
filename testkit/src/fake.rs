//! A fake server for the library's tests and benchmarks: [`FakeCodec`] is the server's side of
//! the framing and messages without I/O (as `crvm_proto::raw::Codec` is the client's), and
//! [`FakePeer`] drives it over one accepted, blocking connection.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use crvm_proto::frame::{handshake_frame, Decoder, Encoder, Kind, MAX_PAYLOAD_TO_SERVER};
use crvm_proto::msg::{to_json, ClientMsg, Op, ServerMsg, PROTOCOL_VERSION};

/// The server's framing and messages of one connection, without I/O.
pub struct FakeCodec {
    enc: Encoder,
    dec: Decoder,
}

impl Default for FakeCodec {
    fn default() -> Self {
        FakeCodec::new()
    }
}

impl FakeCodec {
    pub fn new() -> FakeCodec {
        FakeCodec {
            enc: Encoder::new(),
            dec: Decoder::new(MAX_PAYLOAD_TO_SERVER),
        }
    }

    /// Bytes received from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.dec.feed(bytes)
    }

    /// The next control message received and its attachment; other frames (heartbeats, data)
    /// are passed over. `None` until a whole one has been fed.
    pub fn next_msg(&mut self) -> Result<Option<(ClientMsg, Vec<u8>)>, String> {
        while let Some(f) = self.dec.next_frame().map_err(|e| format!("{e:?}"))? {
            if f.kind == Kind::Control {
                let (json, att) = f.control().map_err(|e| format!("{e:?}"))?;
                let msg = serde_json::from_slice(json).map_err(|e| e.to_string())?;
                return Ok(Some((msg, att.to_vec())));
            }
        }
        Ok(None)
    }

    /// The bytes of `m` with `attachment`: a handshake frame for the handshake messages, a
    /// control frame acknowledging what was received for the others.
    pub fn encode(&mut self, m: &ServerMsg, attachment: &[u8]) -> Vec<u8> {
        if m.is_handshake() {
            handshake_frame(&to_json(m))
        } else {
            self.control(&to_json(m), attachment)
        }
    }

    /// The bytes of a control frame carrying `json` as is (encoded once, sent many times).
    pub fn control(&mut self, json: &[u8], attachment: &[u8]) -> Vec<u8> {
        self.enc.control(self.dec.last_seq(), json, attachment)
    }

    /// Sequence number of the last frame received.
    pub fn last_seq(&self) -> u64 {
        self.dec.last_seq()
    }
}

/// The answer of a fake server to `hello`: `welcome` with these limits.
pub fn welcome(heartbeat_ms: u64, max_buffer_bytes: u64, max_file_bytes: u64) -> ServerMsg {
    ServerMsg::Welcome {
        ver: PROTOCOL_VERSION,
        heartbeat_ms,
        max_buffer_bytes,
        max_file_bytes,
    }
}

/// The server side of one accepted connection.
pub struct FakePeer {
    pub sock: TcpStream,
    pub codec: FakeCodec,
}

impl FakePeer {
    /// Accepts one connection on `l`; a read that waits longer than `patience` fails the test.
    pub fn accept(l: &TcpListener, patience: Duration) -> FakePeer {
        let (sock, _) = l.accept().unwrap();
        sock.set_read_timeout(Some(patience)).unwrap();
        FakePeer {
            sock,
            codec: FakeCodec::new(),
        }
    }

    /// Next control message from the client and its attachment (heartbeats are passed over).
    pub fn recv_attached(&mut self) -> (ClientMsg, Vec<u8>) {
        loop {
            if let Some(m) = self.codec.next_msg().unwrap() {
                return m;
            }
            let mut buf = [0u8; 4096];
            let n = self.sock.read(&mut buf).unwrap();
            assert!(n > 0, "client closed");
            self.codec.feed(&buf[..n]);
        }
    }

    /// Next control message from the client.
    pub fn recv(&mut self) -> ClientMsg {
        self.recv_attached().0
    }

    /// Next request from the client: its ID and body.
    pub fn req(&mut self) -> (u64, Op) {
        match self.recv() {
            ClientMsg::Req { id, op } => (id, op),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    pub fn send(&mut self, m: &ServerMsg) {
        self.send_attached(m, &[]);
    }

    pub fn send_attached(&mut self, m: &ServerMsg, attachment: &[u8]) {
        let f = self.codec.encode(m, attachment);
        self.sock.write_all(&f).unwrap();
    }

    /// Reads Hello and Login and answers both; returns the login request ID.
    pub fn welcome_and_login(&mut self, heartbeat_ms: u64) -> u64 {
        assert!(matches!(
            self.recv(),
            ClientMsg::Hello {
                ver: PROTOCOL_VERSION,
                ..
            }
        ));
        let (id, Op::Login { user_id, .. }) = self.req() else {
            panic!("expected login")
        };
        self.send(&welcome(heartbeat_ms, 1 << 20, 1 << 30));
        self.send(&ServerMsg::Res {
            re: id,
            result: crvm_proto::Outcome::Login { user_id },
        });
        id
    }
}
