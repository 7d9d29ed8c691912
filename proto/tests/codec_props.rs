//! Property tests of the codec: whatever frames are encoded decode back identically however the
//! bytes are cut, and no byte sequence makes the decoder panic, allocate past its limit, or
//! accept a frame it should refuse.

use crvm_proto::frame::{Decoder, Encoder, Kind, HEADER_LEN};
use crvm_proto::msg::{ClientMsg, Op, ServerMsg};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Spec {
    Control(Vec<u8>, Vec<u8>),
    Data(u64, Vec<u8>),
    Ping,
    Pong,
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        (
            prop::collection::vec(any::<u8>(), 0..300),
            prop::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(j, a)| Spec::Control(j, a)),
        (any::<u64>(), prop::collection::vec(any::<u8>(), 0..2000))
            .prop_map(|(s, d)| Spec::Data(s, d)),
        Just(Spec::Ping),
        Just(Spec::Pong),
    ]
}

proptest! {
    #[test]
    fn round_trip_under_any_cut(frames in prop::collection::vec(spec(), 1..20),
                                cuts in prop::collection::vec(1usize..700, 1..50)) {
        let mut enc = Encoder::new();
        let mut wire = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let ack = i as u64;
            wire.extend(match f {
                Spec::Control(j, a) => enc.control(ack, j, a),
                Spec::Data(sid, d) => enc.frame(Kind::Data, ack, &[&sid.to_be_bytes(), d]),
                Spec::Ping => enc.frame(Kind::Ping, ack, &[]),
                Spec::Pong => enc.frame(Kind::Pong, ack, &[]),
            });
        }
        let mut dec = Decoder::new(1 << 20);
        let mut got = Vec::new();
        let mut rest = &wire[..];
        let mut cut = cuts.iter().cycle();
        while !rest.is_empty() {
            let n = (*cut.next().unwrap()).min(rest.len());
            dec.feed(&rest[..n]);
            rest = &rest[n..];
            while let Some(f) = dec.next_frame().unwrap() {
                got.push(f);
            }
        }
        prop_assert_eq!(got.len(), frames.len());
        let mut numbered = 0;
        for (i, (f, s)) in got.iter().zip(&frames).enumerate() {
            // Control and data frames are numbered 1, 2, 3, …; heartbeats are unnumbered.
            if matches!(s, Spec::Control(..) | Spec::Data(..)) {
                numbered += 1;
                prop_assert_eq!(f.seq, numbered);
            } else {
                prop_assert_eq!(f.seq, 0);
            }
            prop_assert_eq!(f.ack, i as u64);
            match s {
                Spec::Control(j, a) => {
                    prop_assert_eq!(f.kind, Kind::Control);
                    let (jj, aa) = f.control().unwrap();
                    prop_assert_eq!((jj, aa), (&j[..], &a[..]));
                }
                Spec::Data(sid, d) => {
                    prop_assert_eq!(f.kind, Kind::Data);
                    prop_assert_eq!(&f.payload[..8], &sid.to_be_bytes()[..]);
                    prop_assert_eq!(&f.payload[8..], &d[..]);
                }
                Spec::Ping => prop_assert_eq!(f.kind, Kind::Ping),
                Spec::Pong => prop_assert_eq!(f.kind, Kind::Pong),
            }
        }
        prop_assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn any_length_prefix_is_judged_from_the_header(len in any::<u32>(), max in 0u32..100_000) {
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(&len.to_be_bytes());
        h[4] = Kind::Ping as u8;
        h[15] = 1; // seq 1
        let mut dec = Decoder::new(max);
        dec.feed(&h);
        let r = dec.next_frame();
        if len > max {
            prop_assert!(r.is_err());
        } else if len == 0 {
            prop_assert!(r.unwrap().is_some());
        } else {
            prop_assert!(r.unwrap().is_none(), "waits for the payload");
        }
        prop_assert!(dec.buffered() <= HEADER_LEN);
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..4000)) {
        let mut dec = Decoder::new(1024);
        dec.feed(&bytes);
        // Decode until it stops: an error, or a need for more bytes.
        while let Ok(Some(f)) = dec.next_frame() {
            if f.kind == Kind::Control {
                let (json, _) = f.control().unwrap();
                let _ = serde_json::from_slice::<ClientMsg>(json);
                let _ = serde_json::from_slice::<ServerMsg>(json);
            }
        }
    }

    #[test]
    fn messages_round_trip(id in any::<u64>(), s in ".{0,40}", dnd in any::<i32>()) {
        for m in [
            ClientMsg::Req { id, op: Op::SetDnd { dnd } },
            ClientMsg::Req { id, op: Op::CreateMeeting { subject: s.clone(), with_pswd: dnd % 2 == 0 } },
            ClientMsg::Req { id, op: Op::HangupCall { call_id: s.clone(), ext: s.clone() } },
            ClientMsg::Cmd { n: id, to: s.clone() },
        ] {
            let j = crvm_proto::msg::to_json(&m);
            prop_assert_eq!(serde_json::from_slice::<ClientMsg>(&j).unwrap(), m);
        }
    }
}
