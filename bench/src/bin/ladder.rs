//! The ladder's cost on this machine, with the exact ffmpeg command Starling builds
//! (`starling-transcode`):
//!
//! 1. **One process against one per rung**, side by side in one run: the ladder's one
//!    ffmpeg (one decode, `split`, an encode per rung, the audio once) against one ffmpeg
//!    per rung (each decoding the source itself) plus one for the audio, all as fast as
//!    they go. CPU is user + system time of the children (`getrusage`); the real-time
//!    factor is media seconds over wall seconds.
//! 2. **Channels in real time**: 1, 2, … ladders at once, each reading the source at its
//!    own pace (`-re`), until one of them cannot keep up (wall time more than 5 % over the
//!    media's).
//! 3. **The live command and its analysis tap**: the command a live channel runs
//!    (`LiveCommand`: MPEG-TS in on stdin, every rung out on stdout, keyframes from the
//!    source), without and with the analysis tap (5 fps 320 px pictures and loudness to
//!    unix sockets, drained here), and with the vertical rendition too (the 9:16
//!    window a reframed channel adds, 720×1280 at most, steerable through its `zmq`
//!    filter), as fast as it goes: the tap's and the vertical encode's cost in CPU.
//!
//! Usage: ladder --source FILE --seconds N --width W --height H [--fps F] [--max-channels K]
//! (bench/ladder.sh makes the source and runs it). Prints Markdown.

use std::{
    process::{Command as Process, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use starling_transcode::{
    default_ladder, plan, AnalysisOutputs, Command, LiveCommand, Output, Rung, Source,
    VerticalOutput, VerticalSize,
};

struct Args {
    source: String,
    seconds: f64,
    width: u32,
    height: u32,
    fps: f64,
    max_channels: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        source: String::new(),
        seconds: 0.0,
        width: 1920,
        height: 1080,
        fps: 30.0,
        max_channels: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--source" => a.source = v,
            "--seconds" => a.seconds = v.parse()?,
            "--width" => a.width = v.parse()?,
            "--height" => a.height = v.parse()?,
            "--fps" => a.fps = v.parse()?,
            "--max-channels" => a.max_channels = v.parse()?,
            _ => bail!("unknown option {k}"),
        }
    }
    if a.source.is_empty() || a.seconds <= 0.0 {
        bail!("usage: ladder --source FILE --seconds N [--width W --height H --fps F --max-channels K]");
    }
    Ok(a)
}

/// User + system CPU of all waited-for children so far.
fn children_cpu() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_CHILDREN is always valid.
    #[allow(unsafe_code)]
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, ru.as_mut_ptr());
        ru.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn command(a: &Args, rungs: Vec<Rung>, audio: bool, paced: bool) -> Command {
    Command {
        input_format: "flv".into(),
        input: a.source.clone(),
        paced,
        segment_duration: Duration::from_secs(2),
        rungs,
        audio_kbps: audio.then_some(128),
    }
}

/// Runs the commands at once; returns (wall of the slowest, CPU of all).
fn run_all(cmds: &[Command]) -> anyhow::Result<(Duration, Duration)> {
    let cpu0 = children_cpu();
    let t0 = Instant::now();
    let mut children = Vec::new();
    for c in cmds {
        let outputs: Vec<Output> = c
            .rungs
            .iter()
            .map(|r| r.name.clone())
            .chain(["audio".to_owned()])
            .map(|name| Output {
                name,
                url: "/dev/null".into(),
            })
            .collect();
        let args = c.args(&outputs).map_err(anyhow::Error::msg)?;
        children.push(
            Process::new("ffmpeg")
                .arg("-y")
                .args(&args)
                .stdin(Stdio::null())
                .spawn()
                .context("running ffmpeg")?,
        );
    }
    for mut ch in children {
        let st = ch.wait()?;
        if !st.success() {
            bail!("ffmpeg failed: {st}");
        }
    }
    Ok((t0.elapsed(), children_cpu() - cpu0))
}

/// Drains everything a reader gives, on a thread of its own.
fn drain(mut r: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || std::io::copy(&mut r, &mut std::io::sink()).unwrap_or(0))
}

/// The live command on `ts` (fed on stdin as fast as ffmpeg takes it), with or without
/// the analysis tap, and the vertical rendition (with the tap); returns (wall, CPU).
fn run_live(
    a: &Args,
    rungs: &[Rung],
    ts: &std::path::Path,
    tap: bool,
    vertical: bool,
) -> anyhow::Result<(Duration, Duration)> {
    let dir = std::env::temp_dir().join(format!("ladder-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut listeners = Vec::new();
    let analysis = if tap {
        for name in ["p", "l"] {
            let l = std::os::unix::net::UnixListener::bind(dir.join(name))?;
            // ffmpeg may connect more than once (a filter graph set up again).
            listeners.push(std::thread::spawn(move || {
                let mut total = 0;
                while let Ok((c, _)) = l.accept() {
                    total += drain(c).join().unwrap_or(0);
                    if total > 0 {
                        break;
                    }
                }
                total
            }));
        }
        let (width, height) = AnalysisOutputs::size((a.width, a.height), 320);
        Some(AnalysisOutputs {
            pictures: format!("unix:{}", dir.join("p").display()),
            width,
            height,
            fps: 5,
            loudness: Some(format!("unix:{}", dir.join("l").display())),
        })
    } else {
        None
    };
    // As the server sizes it: the default 720×1280 at 2500 kbit/s, never scaled up.
    let vertical = vertical
        .then(|| VerticalSize::plan((a.width, a.height), (720, 1280)))
        .flatten()
        .map(|size| VerticalOutput {
            rung: Rung {
                name: "portrait".into(),
                width: size.out.0,
                height: size.out.1,
                bitrate_kbps: size.bitrate((720, 1280), 2500),
                ..rungs[0].clone()
            },
            size,
            control: format!("ipc://{}", dir.join("v").display()),
        });
    let args = LiveCommand {
        rungs: rungs.to_vec(),
        max_segment: Duration::from_secs(3),
        analysis,
        vertical,
    }
    .args();
    let cpu0 = children_cpu();
    let t0 = Instant::now();
    let mut child = Process::new("ffmpeg")
        .args(&args)
        .stdin(std::fs::File::open(ts)?)
        .stdout(Stdio::piped())
        .spawn()
        .context("running ffmpeg")?;
    let out = drain(child.stdout.take().context("stdout")?);
    let st = child.wait()?;
    let wall = t0.elapsed();
    let cpu = children_cpu() - cpu0;
    let bytes = out.join().unwrap_or(0);
    if !st.success() || bytes == 0 {
        bail!("the live command failed: {st}, {bytes} bytes out");
    }
    if tap {
        // Both sockets got something: pictures and loudness lines.
        for l in listeners {
            if l.join().unwrap_or(0) == 0 {
                bail!("the analysis tap wrote nothing");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok((wall, cpu))
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    let rungs = plan(
        &default_ladder(),
        Source {
            video: Some((a.width, a.height)),
            frame_rate: Some(a.fps),
        },
    )?;
    let names: Vec<String> = rungs
        .iter()
        .map(|r| format!("{} {} kbit/s", r.name, r.bitrate_kbps))
        .collect();
    println!(
        "source: {}x{} {} fps, {} s; rungs: {}; x264 veryfast zerolatency; {} cores, load {}",
        a.width,
        a.height,
        a.fps,
        a.seconds,
        names.join(", "),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split(' ')
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!();
    println!("| layout | processes | CPU (s) | CPU / media second | wall (s) | real-time factor |");
    println!("|---|---|---|---|---|---|");
    let one = [command(&a, rungs.clone(), true, false)];
    let (wall1, cpu1) = run_all(&one)?;
    let mut per: Vec<Command> = rungs
        .iter()
        .map(|r| command(&a, vec![r.clone()], false, false))
        .collect();
    per.push(command(&a, Vec::new(), true, false));
    let (wall2, cpu2) = run_all(&per)?;
    for (name, n, wall, cpu) in [
        ("one ffmpeg, decode once", 1, wall1, cpu1),
        ("one ffmpeg per rung", per.len(), wall2, cpu2),
    ] {
        println!(
            "| {name} | {n} | {:.1} | {:.2} | {:.1} | {:.2} |",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() / a.seconds,
            wall.as_secs_f64(),
            a.seconds / wall.as_secs_f64()
        );
    }
    println!();
    println!(
        "one process / per rung, CPU: {:.2}",
        cpu1.as_secs_f64() / cpu2.as_secs_f64()
    );
    println!();
    // The live command reads MPEG-TS, as the channel's tap feeds it.
    let ts = std::env::temp_dir().join(format!("ladder-bench-{}.ts", std::process::id()));
    let st = Process::new("ffmpeg")
        .args([
            "-v", "error", "-y", "-i", &a.source, "-c", "copy", "-f", "mpegts",
        ])
        .arg(&ts)
        .status()?;
    if !st.success() {
        bail!("could not make the MPEG-TS source");
    }
    println!("| live command | CPU (s) | CPU / media second | wall (s) | real-time factor |");
    println!("|---|---|---|---|---|");
    let mut cpus = Vec::new();
    for (name, tap, vertical) in [
        ("rungs only", false, false),
        ("rungs + analysis tap", true, false),
        ("rungs + tap + vertical rendition", true, true),
    ] {
        let (wall, cpu) = run_live(&a, &rungs, &ts, tap, vertical)?;
        cpus.push(cpu.as_secs_f64());
        println!(
            "| {name} | {:.1} | {:.3} | {:.1} | {:.2} |",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() / a.seconds,
            wall.as_secs_f64(),
            a.seconds / wall.as_secs_f64()
        );
    }
    let _ = std::fs::remove_file(&ts);
    println!();
    println!(
        "analysis tap: +{:.3} CPU seconds per media second (+{:.1} %)",
        (cpus[1] - cpus[0]) / a.seconds,
        (cpus[1] / cpus[0] - 1.0) * 100.0
    );
    println!(
        "vertical rendition: +{:.3} CPU seconds per media second (+{:.1} % over the rungs and tap)",
        (cpus[2] - cpus[1]) / a.seconds,
        (cpus[2] / cpus[1] - 1.0) * 100.0
    );
    println!();
    println!("| channels at once (paced) | slowest wall (s) | real time kept | CPU per channel (cores) |");
    println!("|---|---|---|---|");
    for k in 1..=a.max_channels {
        let cmds: Vec<Command> = (0..k)
            .map(|_| command(&a, rungs.clone(), true, true))
            .collect();
        let (wall, cpu) = run_all(&cmds)?;
        let kept = wall.as_secs_f64() <= a.seconds * 1.05;
        println!(
            "| {k} | {:.1} | {} | {:.2} |",
            wall.as_secs_f64(),
            if kept { "yes" } else { "no" },
            cpu.as_secs_f64() / wall.as_secs_f64() / k as f64
        );
        if !kept {
            break;
        }
    }
    Ok(())
}
