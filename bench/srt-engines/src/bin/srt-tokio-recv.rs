//! `srt-tokio-recv`: the pure-Rust SRT engine (srt-tokio) as a receiver, for
//! `bench/srt-engines.sh`. It listens for one caller in live mode, writes every
//! payload it receives to a file, and when the caller closes (or `--seconds` runs
//! out) prints one JSON line: bytes and packets received and srt-tokio's own
//! statistics (the last snapshot it published, at most `--stats-ms` old). Ctrl-C
//! (SIGINT) also ends it with that line, marked `"ended_by": "interrupted"`.
//!
//! The UDP and SRT receive buffers are large on purpose: srt-tokio's defaults (64 KiB
//! UDP buffers) lose datagrams in the kernel at 20–40 Mbit/s. The kernel caps the UDP
//! buffer at `net.core.rmem_max` (twice that, as Linux counts); the JSON line reports
//! what was asked for.

use std::{
    fs::File,
    io::{BufWriter, Write},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde_json::json;
use srt_tokio::{
    options::{ByteCount, PacketCount},
    SocketStatistics, SrtSocket,
};

const USAGE: &str = "\
srt-tokio-recv --port PORT --out FILE [--latency-ms MS] [--buffer-mb MB]
               [--accept-timeout S] [--seconds S] [--stats-ms MS]
  --latency-ms   SRT receive latency (default 120, srt-tokio's default)
  --buffer-mb    UDP receive buffer and SRT receive buffer, MiB (default 32)
  --accept-timeout  give up if no caller connects within S seconds (default 30)
  --seconds      stop after S seconds of connection (default: until the caller closes)
  --stats-ms     how often srt-tokio publishes statistics (default 200, its minimum)";

struct Args {
    port: u16,
    out: String,
    latency: Duration,
    buffer: u64,
    accept_timeout: Duration,
    seconds: Option<Duration>,
    stats_every: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut port, mut out) = (None, None);
    let mut a = Args {
        port: 0,
        out: String::new(),
        latency: Duration::from_millis(120),
        buffer: 32 << 20,
        accept_timeout: Duration::from_secs(30),
        seconds: None,
        stats_every: Duration::from_millis(200),
    };
    while let Some(flag) = it.next() {
        if flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let v = it
            .next()
            .ok_or(format!("{flag} needs a value\n\n{USAGE}"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--port" => port = Some(v.parse::<u16>().map_err(|e| format!("--port: {e}"))?),
            "--out" => out = Some(v),
            "--latency-ms" => a.latency = Duration::from_secs_f64(num(&v)? / 1000.0),
            "--buffer-mb" => a.buffer = (num(&v)? * 1048576.0) as u64,
            "--accept-timeout" => a.accept_timeout = Duration::from_secs_f64(num(&v)?),
            "--seconds" => a.seconds = Some(Duration::from_secs_f64(num(&v)?)),
            "--stats-ms" => a.stats_every = Duration::from_secs_f64(num(&v)? / 1000.0),
            _ => return Err(format!("unknown argument {flag}\n\n{USAGE}")),
        }
    }
    a.port = port.ok_or(format!("--port is required\n\n{USAGE}"))?;
    a.out = out.ok_or(format!("--out is required\n\n{USAGE}"))?;
    Ok(a)
}

fn stats_json(s: &SocketStatistics) -> serde_json::Value {
    json!({
        "rx_data": s.rx_data,
        "rx_unique_data": s.rx_unique_data,
        "rx_retransmit_data": s.rx_retransmit_data,
        "rx_loss_data": s.rx_loss_data,
        "rx_dropped_data": s.rx_dropped_data,
        "rx_belated_data": s.rx_belated_data,
        "rx_bytes": s.rx_bytes,
        "rx_unique_bytes": s.rx_unique_bytes,
        "rx_dropped_bytes": s.rx_dropped_bytes,
        "tx_nak": s.tx_nak,
        "tx_ack": s.tx_ack,
        "tx_light_ack": s.tx_light_ack,
        "rx_all_packets": s.rx_all_packets,
        "rx_average_rtt_ms": s.rx_average_rtt.as_secs_f64() * 1000.0,
        "elapsed_s": s.elapsed_time.as_secs_f64(),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    let buffer = args.buffer;
    let stats_every = args.stats_every;
    let builder = SrtSocket::builder().latency(args.latency).set(move |o| {
        // SRTO_FC bounds both buffers (in packets of the MSS); raise it to fit.
        let fc = buffer / o.session.max_segment_size.0 + 1;
        o.sender.flow_control_window_size = PacketCount(fc.max(25600));
        o.receiver.buffer_size = ByteCount(buffer);
        o.connect.udp_recv_buffer_size = ByteCount(buffer);
        o.connect.udp_send_buffer_size = ByteCount(1 << 20);
        o.session.statistics_interval = stats_every;
    });
    eprintln!("srt-tokio-recv: listening on :{}", args.port);
    let listen = builder.listen_on(args.port);
    let mut socket = match tokio::time::timeout(args.accept_timeout, listen).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            eprintln!("srt-tokio-recv: listen: {e}");
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!("srt-tokio-recv: no caller within {:?}", args.accept_timeout);
            std::process::exit(1);
        }
    };
    let settings = socket.settings().clone();
    eprintln!(
        "srt-tokio-recv: connected to {}, latency rx {:?}",
        settings.remote, settings.recv_tsbpd_latency
    );

    // Keep the last statistics snapshot; the stream ends with the connection.
    let last = Arc::new(Mutex::new(SocketStatistics::default()));
    let mut stats = socket.statistics().clone();
    let keeper = {
        let last = last.clone();
        tokio::spawn(async move {
            while let Some(s) = stats.next().await {
                *last.lock().unwrap() = s;
            }
        })
    };

    let mut out = BufWriter::with_capacity(1 << 20, File::create(&args.out).expect("--out"));
    let (mut bytes, mut packets) = (0u64, 0u64);
    let start = Instant::now();
    let far = Duration::from_secs(100 * 365 * 86_400);
    let deadline = tokio::time::sleep(args.seconds.unwrap_or(far));
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(deadline, interrupt);
    let mut error = None;
    let mut ended_by = "caller closed";
    loop {
        tokio::select! {
            item = socket.next() => match item {
                Some(Ok((_, payload))) => {
                    bytes += payload.len() as u64;
                    packets += 1;
                    out.write_all(&payload).expect("writing --out");
                }
                Some(Err(e)) => {
                    error = Some(e.to_string());
                    ended_by = "error";
                    break;
                }
                None => break,
            },
            _ = &mut deadline => {
                ended_by = "--seconds";
                break;
            }
            _ = &mut interrupt => {
                ended_by = "interrupted";
                break;
            }
        }
    }
    out.flush().expect("writing --out");
    let elapsed = start.elapsed();
    // The task's last statistics come before it ends; give it a moment if still up.
    let _ = tokio::time::timeout(Duration::from_millis(500), keeper).await;
    let s = last.lock().unwrap().clone();
    let line = json!({
        "engine": "srt-tokio 0.4.4",
        "ended_by": ended_by,
        "error": error,
        "bytes": bytes,
        "packets": packets,
        "seconds": elapsed.as_secs_f64(),
        "latency_ms": settings.recv_tsbpd_latency.as_secs_f64() * 1000.0,
        "buffer_bytes_asked": buffer,
        "stats": stats_json(&s),
    });
    println!("{line}");
}
