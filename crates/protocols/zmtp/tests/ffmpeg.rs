//! Against the real peer: ffmpeg's `zmq` filter (libzmq) in a running graph, steering a
//! `crop` as the ladder's vertical rendition does. Needs ffmpeg (scripts/test installs
//! it).

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use starling_zmtp::{Event, ReqSocket};

/// A blocking driver: writes what the socket queued, reads until an event.
struct Conn {
    socket: ReqSocket,
    stream: UnixStream,
}

impl Conn {
    fn connect(path: &std::path::Path, ffmpeg: &mut std::process::Child) -> Self {
        let deadline = Instant::now() + Duration::from_secs(15);
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    if let Some(status) = ffmpeg.try_wait().unwrap() {
                        panic!("ffmpeg exited ({status}) before its zmq socket appeared");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("ffmpeg's zmq socket never appeared at {path:?}: {e}"),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut c = Self {
            socket: ReqSocket::new(),
            stream,
        };
        assert_eq!(c.next(), Event::Ready);
        c
    }

    fn next(&mut self) -> Event {
        loop {
            let out = self.socket.take_output();
            if !out.is_empty() {
                self.stream.write_all(&out).unwrap();
            }
            if let Some(e) = self.socket.poll_event() {
                return e;
            }
            let mut buf = [0u8; 512];
            let n = self.stream.read(&mut buf).expect("ffmpeg answers");
            assert!(n > 0, "ffmpeg closed the connection");
            self.socket.receive(&buf[..n]).unwrap();
        }
    }

    fn ask(&mut self, request: &str) -> String {
        self.socket.request(&[request.as_bytes()]).unwrap();
        match self.next() {
            Event::Reply(parts) => parts
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect::<Vec<_>>()
                .join("|"),
            e => panic!("not a reply: {e:?}"),
        }
    }
}

#[test]
fn ffmpeg_takes_crop_commands_and_names_what_it_refuses() {
    let dir = std::env::temp_dir().join(format!("starling-zmtp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c");
    let _ = std::fs::remove_file(&path);
    // `:` escaped twice: the graph parser unescapes once, the filter's options again.
    let bind = format!("ipc\\\\://{}", path.display());
    let mut ffmpeg = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=10",
            "-t",
            "30",
        ])
        .args([
            "-vf",
            &format!("zmq=bind_address={bind},crop@v=w=100:h=180:x=0:y=0"),
        ])
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg runs");
    let mut c = Conn::connect(&path, &mut ffmpeg);
    assert_eq!(c.ask("crop@v x 40"), "0 Success");
    // The expression the ladder sends: a move from 0 to 120 over 0.2 s of media time.
    let expr = "st(3,isnan(t));if(ld(3)+ld(2),0,st(1,t)+st(2,1));if(ld(3),120,0+(120-0)*clip((t-ld(1))/0.2,0,1))";
    assert_eq!(c.ask(&format!("crop@v x {expr}")), "0 Success");
    // A filter the graph has not: refused with its error number (ENOSYS), the graph
    // still running. (Not tried: an expression crop cannot parse, which ffmpeg 5.1's
    // crop survives by crashing on the next frame; the ladder only ever sends
    // expressions it built from numbers.)
    let refused = c.ask("crop@nosuch x 1");
    assert!(refused.starts_with("38 "), "{refused}");
    assert_eq!(c.ask("crop@v x 10"), "0 Success");
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
