//! The ABR ladder, end to end: ffmpeg publishes over RTMP, the node runs its ffmpeg
//! ladder child, and the rungs come back as renditions of the channel. Every rung is
//! checked with ffprobe (size, bitrate, a keyframe at each segment start) and against the
//! source (the same `tfdt` for segment n); the child is killed mid-stream and must come
//! back within two segments while the source plays on; sources the ladder cannot serve
//! as they are (a size change mid-stream, odd sizes, audio or video only) adapt or say
//! why.
//!
//! The publisher sends a file encoded beforehand (`-c copy`), so the only encoder
//! competing for this 2-core machine's CPU is the ladder's; the tests run one at a time.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use common::*;

/// One ladder at a time: two would share two cores with their publishers.
static SERIAL: Mutex<()> = Mutex::new(());

const LADDER_ON: &str = "[transcode]\nenabled = true\n";

/// A file of `seconds` of a noisy moving picture (the bitrate targets need content that
/// uses them) at `size`, 30 fps, a keyframe every 2 s, with a tone unless `audio` is
/// false, or only the tone when `video` is false. 4:2:0, or 4:4:4 for an odd size
/// (4:2:0 H.264 cannot say an odd height).
fn source(dir: &Path, name: &str, size: &str, seconds: u32, video: bool, audio: bool) -> PathBuf {
    let odd = size
        .split('x')
        .any(|n| n.parse::<u32>().is_ok_and(|n| n % 2 == 1));
    let out = dir.join(format!("{name}.flv"));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y"]);
    if video {
        // (testsrc2 draws even sizes only: an odd one is scaled to.)
        let (w, h) = size.split_once('x').unwrap();
        cmd.args(["-f", "lavfi", "-i"]).arg(format!(
            "testsrc2=size=1280x720:rate=30,scale={w}:{h},noise=alls=30:allf=t"
        ));
    }
    if audio {
        cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    }
    cmd.args(["-t", &seconds.to_string()]);
    if video {
        cmd.args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "8000k",
            "-g",
            "60",
            "-pix_fmt",
            if odd { "yuv444p" } else { "yuv420p" },
        ]);
    }
    if audio {
        cmd.args(["-c:a", "aac", "-b:a", "96k"]);
    }
    cmd.args(["-f", "flv"]).arg(&out);
    run(&mut cmd);
    out
}

/// The body of a 200 response to a GET of `path`.
fn get(server: &Server, path: &str) -> Option<String> {
    let r = server.http_request("GET", path, &[], None);
    (r.status == 200).then_some(r.body)
}

/// Waits until the node has ended `n` runs (the reconnect grace after each publish), so
/// that the next publish starts a run of its own.
fn wait_runs_ended(server: &Server, n: usize) {
    wait_until("the run's end", Duration::from_secs(10), || {
        (server.log_text().matches("run ended").count() >= n).then_some(())
    });
}

/// The channel's entry in `/api/v1/live`.
fn live_entry(server: &Server) -> Option<serde_json::Value> {
    let text = get(server, "/api/v1/live")?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["channels"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == CHANNEL)
        .cloned()
}

/// (uri, attributes) of each variant of the multivariant playlist.
fn variants(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter_map(|w| {
            let attrs = w[0].strip_prefix("#EXT-X-STREAM-INF:")?;
            Some((w[1].to_owned(), attrs.to_owned()))
        })
        .collect()
}

/// (media sequence number, segment URI, discontinuity before it, gap) of each segment of
/// a media playlist.
fn segments(text: &str) -> Vec<(u64, String, bool, bool)> {
    let Some(mut msn) = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .map(|n| n.parse::<u64>().unwrap())
    else {
        return Vec::new();
    };
    let (mut disc, mut gap) = (false, false);
    let mut out = Vec::new();
    for l in text.lines() {
        if l == "#EXT-X-DISCONTINUITY" {
            disc = true;
        } else if l == "#EXT-X-GAP" {
            gap = true;
        } else if !l.starts_with('#') && !l.is_empty() {
            out.push((msn, l.to_owned(), disc, gap));
            msn += 1;
            disc = false;
            gap = false;
        }
    }
    out
}

fn playlist(server: &Server, rendition: &str) -> String {
    get(server, &format!("/live/{CHANNEL}/{rendition}/index.m3u8")).unwrap_or_default()
}

/// The `tfdt` of a CMAF segment's first fragment.
fn tfdt(seg: &[u8]) -> u64 {
    fn boxes(b: &[u8]) -> Vec<(&[u8], &[u8])> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + 8 <= b.len() {
            let size = u32::from_be_bytes(b[pos..pos + 4].try_into().unwrap()) as usize;
            if size < 8 || pos + size > b.len() {
                break;
            }
            out.push((&b[pos + 4..pos + 8], &b[pos + 8..pos + size]));
            pos += size;
        }
        out
    }
    let moof = boxes(seg).into_iter().find(|b| b.0 == b"moof").unwrap().1;
    let traf = boxes(moof).into_iter().find(|b| b.0 == b"traf").unwrap().1;
    let t = boxes(traf).into_iter().find(|b| b.0 == b"tfdt").unwrap().1;
    if t[0] == 1 {
        u64::from_be_bytes(t[4..12].try_into().unwrap())
    } else {
        u64::from(u32::from_be_bytes(t[4..8].try_into().unwrap()))
    }
}

fn bytes(server: &Server, path: &str) -> Vec<u8> {
    let (status, body) = server.http_bytes(path).unwrap();
    assert_eq!(status, 200, "{path}");
    body
}

/// Complete, real (not gap) segments of `rendition` as (msn, path), the init path.
fn complete_segments(server: &Server, rendition: &str) -> (String, Vec<(u64, String)>) {
    let text = playlist(server, rendition);
    let init = text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .next_back()
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let segs = segments(&text)
        .into_iter()
        .filter(|s| !s.3)
        .map(|(n, uri, _, _)| (n, format!("/live/{CHANNEL}/{rendition}/{uri}")))
        .collect();
    (format!("/live/{CHANNEL}/{rendition}/{init}"), segs)
}

#[test]
fn every_rung_is_the_size_and_bitrate_asked_and_cut_where_the_source_is() {
    if !require_ffmpeg() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut server = Server::start("ladder-rungs", LADDER_ON);
    let file = source(&server.dir, "src", "1280x720", 16, true, true);
    let mut publisher = publish_file(&server, &file);
    // Every rung below 720p of the default ladder: 480p at 1.2 Mbit/s, 360p at 0.6.
    let multivariant = wait_until("three variants", Duration::from_secs(20), || {
        let text = get(&server, &format!("/live/{CHANNEL}/index.m3u8"))?;
        (variants(&text).len() == 3).then_some(text)
    });
    let v = variants(&multivariant);
    assert_eq!(
        v.iter().map(|v| v.0.as_str()).collect::<Vec<_>>(),
        ["source/index.m3u8", "480p/index.m3u8", "360p/index.m3u8"],
        "{multivariant}"
    );
    for (uri, attrs) in &v {
        for key in [
            "BANDWIDTH=",
            "AVERAGE-BANDWIDTH=",
            "CODECS=\"avc1.",
            "RESOLUTION=",
            "FRAME-RATE=30.000",
            "AUDIO=\"audio\"",
        ] {
            assert!(attrs.contains(key), "{uri}: {key} missing in {attrs}");
        }
    }
    assert!(v[1].1.contains("RESOLUTION=854x480"), "{}", v[1].1);
    assert!(v[2].1.contains("RESOLUTION=640x360"), "{}", v[2].1);
    let status = live_entry(&server).unwrap();
    assert_eq!(status["ladder"]["state"], "running", "{status}");
    assert_eq!(
        status["ladder"]["rungs"],
        serde_json::json!(["480p", "360p"])
    );

    // The MPD: one video adaptation set, a representation per rendition.
    let mpd = get(&server, &format!("/live/{CHANNEL}/manifest.mpd")).unwrap();
    for id in ["source", "480p", "360p"] {
        assert!(
            mpd.contains(&format!("<Representation id=\"{id}\"")),
            "{mpd}"
        );
    }
    assert_eq!(
        mpd.matches("contentType=\"video\"").count(),
        mpd.matches("<Period").count(),
        "{mpd}"
    );
    // Independent DASH clients read that MPD and decode: ffmpeg's DASH demuxer live, and
    // GStreamer's dashdemux2 once the MPD is static (live, dashdemux2 first buffers 30 s
    // of media: `dash_players` covers that on a longer stream).
    let mpd_path = format!("/live/{CHANNEL}/manifest.mpd");
    let mpd_url = server.http_url(&mpd_path);
    let live = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&mpd_url)
        .args(["-t", "3", "-f", "framecrc", "-"]));
    let frames = String::from_utf8_lossy(&live.stdout)
        .lines()
        .filter(|l| l.starts_with("0,"))
        .count();
    assert!(
        frames >= 60,
        "ffmpeg decoded {frames} frames of the ladder's MPD"
    );
    assert!(publisher.wait().unwrap().success());
    std::thread::sleep(Duration::from_secs(2));
    if have("gst-launch-1.0") {
        wait_until("a static MPD", Duration::from_secs(10), || {
            get(&server, &mpd_path).filter(|m| m.contains("type=\"static\""))
        });
        let (frames, text) = gst_frames(&gst_decode(&mpd_url, None, 60).output().unwrap());
        assert!(
            text.contains("GstDashDemux2"),
            "not read by dashdemux2:\n{text}"
        );
        assert_eq!(
            frames,
            16 * 30,
            "GStreamer's frames of the static MPD:\n{text}"
        );
    }

    let (_, source_segs) = complete_segments(&server, "source");
    let source_tfdt: Vec<(u64, u64)> = source_segs
        .iter()
        .map(|(n, p)| (*n, tfdt(&bytes(&server, p))))
        .collect();
    for (rung, (w, h), kbps) in [("480p", (854, 480), 1200.0), ("360p", (640, 360), 600.0)] {
        let (init, segs) = complete_segments(&server, rung);
        assert!(segs.len() >= 6, "{rung}: {segs:?}");
        // Whole segments, not the last (flushed at the end of the publish).
        let mut file = bytes(&server, &init);
        let mut media_bytes = 0usize;
        let mut starts = Vec::new();
        for (n, p) in &segs {
            let seg = bytes(&server, p);
            let t = tfdt(&seg);
            let same = source_tfdt.iter().find(|s| s.0 == *n).map(|s| s.1);
            assert_eq!(
                same,
                Some(t),
                "{rung} segment {n}: tfdt {t} vs the source's {same:?}"
            );
            starts.push(t);
            if *n != segs.last().unwrap().0 {
                media_bytes += seg.len();
            }
            file.extend_from_slice(&seg);
        }
        let path = server.dir.join(format!("{rung}.mp4"));
        std::fs::write(&path, &file).unwrap();
        let stream = probe_stream(&path, "video");
        assert!(
            stream.contains(&format!("width={w}\n")) && stream.contains(&format!("height={h}\n")),
            "{rung}: {stream}"
        );
        let packets = probe_packets(&path);
        for t in &starts {
            let ms = (*t as f64 / 90.0).round() as i64;
            let at = packets
                .iter()
                .find(|p| (p.pts_ms - ms).abs() <= 1)
                .unwrap_or_else(|| panic!("{rung}: no frame at {ms} ms"));
            assert!(
                at.key,
                "{rung}: the segment starting at {ms} ms starts without a keyframe"
            );
        }
        let secs = 2.0 * (segs.len() - 1) as f64;
        let measured = media_bytes as f64 * 8.0 / secs / 1000.0;
        assert!(
            (measured - kbps).abs() <= kbps * 0.2,
            "{rung}: {measured:.0} kbit/s, target {kbps}"
        );
    }
    server.stop();
}

#[test]
fn a_killed_ladder_comes_back_within_two_segments_and_the_source_plays_on() {
    if !require_ffmpeg() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut server = Server::start("ladder-kill", LADDER_ON);
    let file = source(&server.dir, "src", "854x480", 24, true, true);
    let mut publisher = publish_file(&server, &file);
    wait_until("the 360p rung", Duration::from_secs(20), || {
        let segs = segments(&playlist(&server, "360p"));
        (segs.len() >= 2).then_some(())
    });
    let pid = server.child.as_ref().unwrap().id();
    let out = Command::new("pkill")
        .args(["-9", "-P", &pid.to_string(), "ffmpeg"])
        .output()
        .unwrap();
    assert!(out.status.success(), "no ladder child to kill");
    let killed = Instant::now();
    let source_at_kill = segments(&playlist(&server, "source")).last().unwrap().0;
    let rung_at_kill = segments(&playlist(&server, "360p")).last().unwrap().0;

    // Back within two segments (4 s), plus a segment of slack for the one in progress.
    let back = wait_until(
        "the rung back after a discontinuity",
        Duration::from_secs(8),
        || {
            let segs = segments(&playlist(&server, "360p"));
            segs.iter()
                .find(|s| s.0 > rung_at_kill && s.2 && !s.3)
                .map(|s| s.0)
        },
    );
    assert!(
        killed.elapsed() < Duration::from_secs(7),
        "back after {:?}",
        killed.elapsed()
    );
    assert!(
        back <= source_at_kill + 3,
        "rung back at segment {back}, source was at {source_at_kill}"
    );
    let status = live_entry(&server).unwrap();
    assert_eq!(status["ladder"]["restarts"], 1, "{status}");
    assert_eq!(status["ladder"]["state"], "running", "{status}");

    assert!(publisher.wait().unwrap().success());
    // The source never stopped: its numbers are consecutive with no gap or discontinuity.
    let source = segments(&playlist(&server, "source"));
    assert!(
        source
            .windows(2)
            .all(|w| w[1].0 == w[0].0 + 1 && !w[1].2 && !w[1].3),
        "{source:?}"
    );
    assert!(source.len() >= 10, "{source:?}");
    // The rung's playlist carries the break and every number after it.
    let rung = segments(&playlist(&server, "360p"));
    assert!(rung.iter().any(|s| s.2), "{rung:?}");
    // Players decode across the break: ffmpeg reads the rung's whole playlist.
    let out = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(server.http_url(&format!("/live/{CHANNEL}/360p/index.m3u8")))
        .args(["-f", "null", "-"]));
    assert!(out.status.success());
    assert!(!server.log_text().contains("panicked"));
    server.stop();
}

#[test]
fn sources_the_ladder_cannot_take_as_they_are_adapt_or_say_why() {
    if !require_ffmpeg() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut server = Server::start("ladder-bad", LADDER_ON);
    let dir = server.dir.clone();

    // An odd size: rungs are even-sized and still cut where the source is.
    let odd = source(&dir, "odd", "1278x719", 8, true, true);
    assert!(publish_file(&server, &odd).wait().unwrap().success());
    let text = get(&server, &format!("/live/{CHANNEL}/index.m3u8")).unwrap();
    assert!(
        text.contains("RESOLUTION=854x480") && text.contains("RESOLUTION=640x360"),
        "{text}"
    );
    assert!(text.contains("RESOLUTION=1278x719"), "{text}");
    wait_runs_ended(&server, 1);

    // Audio only: no ladder, and the status says why.
    let audio = source(&dir, "audio", "", 8, false, true);
    let mut p = publish_file(&server, &audio);
    let status = wait_until("the ladder's status", Duration::from_secs(10), || {
        live_entry(&server).filter(|s| s["ladder"]["state"] == "source only")
    });
    assert!(
        status["ladder"]["reason"]
            .as_str()
            .unwrap()
            .contains("no video"),
        "{status}"
    );
    assert!(p.wait().unwrap().success());
    wait_runs_ended(&server, 2);

    // Video only: rungs without an audio group.
    let video = source(&dir, "video", "854x480", 8, true, false);
    assert!(publish_file(&server, &video).wait().unwrap().success());
    let text = get(&server, &format!("/live/{CHANNEL}/index.m3u8")).unwrap();
    let v = variants(&text);
    assert_eq!(v.len(), 2, "{text}");
    assert!(v.iter().all(|(_, a)| !a.contains("AUDIO=")), "{text}");
    wait_runs_ended(&server, 3);

    // The size changes mid-stream (720p, then 480p; over SRT, whose MPEG-TS carries
    // the parameter sets in band): the ladder restarts with the rungs the new size
    // gets; the 480p rung (now the source's own size) leaves the playlist.
    let ts = |name: &str, size: &str, seconds: u32| {
        let flv = source(&dir, name, size, seconds, true, true);
        let out = dir.join(format!("{name}.ts"));
        run(Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&flv)
            .args(["-c", "copy", "-f", "mpegts"])
            .arg(&out));
        std::fs::read(out).unwrap()
    };
    let mut both = ts("a", "1280x720", 6);
    both.extend(ts("b", "854x480", 8));
    let joined = dir.join("ab.ts");
    std::fs::write(&joined, both).unwrap();
    let url = server.srt_url(&format!("#!::r={CHANNEL},m=publish,s={KEY}"), "");
    let mut p = Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-i"])
        .arg(&joined)
        .args(["-c", "copy", "-f", "mpegts"])
        .arg(url)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the 480p rung", Duration::from_secs(15), || {
        variants(&get(&server, &format!("/live/{CHANNEL}/index.m3u8"))?)
            .iter()
            .any(|v| v.0 == "480p/index.m3u8")
            .then_some(())
    });
    let status = wait_until("the new plan", Duration::from_secs(15), || {
        live_entry(&server).filter(|s| s["ladder"]["rungs"] == serde_json::json!(["360p"]))
    });
    assert_eq!(status["ladder"]["state"], "running", "{status}");
    let text = wait_until("480p leaving the playlist", Duration::from_secs(15), || {
        let text = get(&server, &format!("/live/{CHANNEL}/index.m3u8"))?;
        (!text.contains("480p/index.m3u8")).then_some(text)
    });
    assert!(
        text.contains("RESOLUTION=854x480") && text.contains("360p/index.m3u8"),
        "{text}"
    );
    assert!(p.wait().unwrap().success());
    assert!(!server.log_text().contains("panicked"));
    server.stop();
}

#[test]
fn a_channel_gets_the_rungs_it_asks_for() {
    if !require_ffmpeg() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The node's ladder would give a 720p source 480p and 360p; the channel asks for
    // 360p alone.
    let mut server = Server::start_channel("ladder-choice", LADDER_ON, "ladder = \"source,360p\"");
    let file = source(&server.dir, "src", "1280x720", 6, true, false);
    let mut p = publish_file(&server, &file);
    let status = wait_until("the ladder", Duration::from_secs(15), || {
        live_entry(&server).filter(|s| s["ladder"]["state"] == "running")
    });
    assert_eq!(
        status["ladder"]["rungs"],
        serde_json::json!(["360p"]),
        "{status}"
    );
    assert!(p.wait().unwrap().success());
    let text = get(&server, &format!("/live/{CHANNEL}/index.m3u8")).unwrap();
    let v = variants(&text);
    assert_eq!(
        v.iter().map(|v| v.0.as_str()).collect::<Vec<_>>(),
        ["source/index.m3u8", "360p/index.m3u8"],
        "{text}"
    );
    server.stop();
}

#[test]
fn hls_js_switches_down_on_a_throttled_network_and_back_up_and_dash_js_plays_the_ladder() {
    if !require_ffmpeg() || !require_browser() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut server = Server::start("ladder-abr", LADDER_ON);
    let file = source(&server.dir, "src", "1280x720", 10, true, true);
    // Looped: 100 s of it, cheaply (no encode).
    let mut publisher = Command::new("ffmpeg")
        .args(["-v", "error", "-stream_loop", "9", "-re", "-i"])
        .arg(&file)
        .args(["-c", "copy", "-f", "flv"])
        .arg(server.rtmp_url(KEY))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("three variants", Duration::from_secs(20), || {
        let text = get(&server, &format!("/live/{CHANNEL}/index.m3u8"))?;
        (variants(&text).len() == 3).then_some(())
    });
    // 1 Mbit/s fits 360p (0.6 + audio) and nothing above it.
    let v = watch(&[
        &server.http_url(&format!("/watch/{CHANNEL}")),
        "--abr",
        "1000",
        "--timeout",
        "60",
    ]);
    eprintln!("browser (hls.js, ABR): {v}");
    assert_eq!(v["mode"], "hls.js", "{v}");
    assert!(v["abr"]["down"]["height"].as_u64().unwrap() <= 360, "{v}");
    assert!(v["abr"]["up"]["height"].as_u64().unwrap() > 360, "{v}");

    // dash.js plays the MPD with its three representations, in low-latency mode.
    let v = watch(&[
        &server.http_url(&format!("/watch/{CHANNEL}?player=dash")),
        "--seconds",
        "6",
        "--max-latency",
        "5",
        "--timeout",
        "40",
    ]);
    eprintln!("browser (dash.js, ladder): {v}");
    assert_eq!(v["mode"], "dash.js", "{v}");
    let _ = publisher.kill();
    let _ = publisher.wait();
    server.stop();
}
