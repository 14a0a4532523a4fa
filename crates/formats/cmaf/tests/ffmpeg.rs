//! Interop tests: real streams made by ffmpeg go through the writer, and ffprobe/ffmpeg
//! judge the result (codec parameters, every packet's pts/dts, clean decode).
//!
//! Each test encodes a 2 s source into a temporary MP4 with ffmpeg, takes the packets
//! (payload bytes via a raw `-c copy` output, timestamps and sizes via ffprobe), rebuilds
//! init segment + fragments with this crate, and checks the concatenated file.
//! These tests need ffmpeg/ffprobe 5.x with libx264, libx265 and libopus on PATH; set
//! `STARLING_CMAF_KEEP=1` to keep the files in the temp directory.

// Helpers outside #[test] fns: a failed step must fail the test loudly.
#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use bytes::Bytes;
use starling_cmaf::{
    init_segment, media_fragment, ntp_from_system_time, FragmentOptions, ProducerReference, Sample,
};
use starling_media::{
    aac, h264::AvcConfig, h265::HevcConfig, nal, CodecConfig, OpusConfig, Track, TrackId,
};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("starling-cmaf-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // STARLING_CMAF_KEEP=1 keeps the files for a look with other tools.
        if std::env::var_os("STARLING_CMAF_KEEP").is_some() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs ffmpeg or ffprobe and returns stdout; fails the test on a non-zero exit.
fn run(tool: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {tool} ({e}): install ffmpeg (with libx264, libx265, libopus) to run the CMAF interop tests")
    });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{tool} {args:?} failed: {stderr}");
    (stdout, stderr)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[derive(Debug, Clone)]
struct Packet {
    pts: i64,
    dts: i64,
    duration: i64,
    key: bool,
    data: Bytes,
}

/// The packets of the first stream of `mp4`, with payloads cut from a raw stream copy.
fn packets(dir: &TempDir, mp4: &Path, raw_format: &str) -> (u32, Vec<Packet>) {
    let (probe, _) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "0",
            "-show_entries",
            "stream=time_base",
            "-of",
            "csv=p=0",
            p(mp4),
        ],
    );
    let timescale: u32 = probe.trim().strip_prefix("1/").unwrap().parse().unwrap();
    let (probe, _) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "0",
            "-show_entries",
            "packet=pts,dts,duration,size,flags",
            "-of",
            "csv=p=0",
            p(mp4),
        ],
    );
    let raw = dir.path("payload.bin");
    run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-i",
            p(mp4),
            "-map",
            "0:0",
            "-c",
            "copy",
            "-f",
            raw_format,
            p(&raw),
        ],
    );
    let data = Bytes::from(std::fs::read(&raw).unwrap());
    let mut pos = 0;
    let mut out = Vec::new();
    for line in probe.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let size: usize = f[3].parse().unwrap();
        out.push(Packet {
            pts: f[0].parse().unwrap(),
            dts: f[1].parse().unwrap(),
            duration: f[2].parse().unwrap(),
            key: f[4].starts_with('K'),
            data: data.slice(pos..pos + size),
        });
        pos += size;
    }
    assert_eq!(
        pos,
        data.len(),
        "packet sizes do not add up to the raw stream"
    );
    (timescale, out)
}

/// Parameter sets of the first access unit, in Annex B, via the mp4-to-Annex-B filter.
fn parameter_sets(dir: &TempDir, mp4: &Path, bsf: &str, format: &str) -> Vec<Bytes> {
    let es = dir.path("first.es");
    run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-i",
            p(mp4),
            "-c",
            "copy",
            "-bsf:v",
            bsf,
            "-frames:v",
            "1",
            "-f",
            format,
            p(&es),
        ],
    );
    let data = Bytes::from(std::fs::read(&es).unwrap());
    nal::split_annexb(&data).collect()
}

/// One fragment's worth of work for the writer: a sample range and whether it opens a
/// segment (`styp` + `prft`) or continues one as a part.
struct Cut {
    range: std::ops::Range<usize>,
    segment_start: bool,
}

/// Builds init + fragments; `shift` is added to every decode time (the reorder delay for
/// video, the priming offset for Opus) and subtracted from composition offsets.
fn package(track: &Track, packets: &[Packet], shift: i64, cuts: &[Cut]) -> Vec<u8> {
    let mut file = init_segment(track).unwrap().to_vec();
    for (i, cut) in cuts.iter().enumerate() {
        let samples: Vec<Sample> = packets[cut.range.clone()]
            .iter()
            .map(|pk| Sample {
                duration: pk.duration.try_into().unwrap(),
                cts_offset: (pk.pts - pk.dts - shift).try_into().unwrap(),
                keyframe: pk.key,
                data: pk.data.clone(),
            })
            .collect();
        let first = &packets[cut.range.start];
        let base = u64::try_from(first.dts + shift).unwrap();
        let opts = FragmentOptions {
            sequence_number: i as u32 + 1,
            base_media_decode_time: base,
            styp: cut.segment_start,
            prft: cut.segment_start.then(|| ProducerReference {
                ntp_timestamp: ntp_from_system_time(std::time::SystemTime::now()),
                media_time: base,
            }),
        };
        let fragment = media_fragment(track, &samples, &opts).unwrap();
        if let Some(reference) = opts.prft {
            check_prft(&fragment, &reference);
        }
        file.extend_from_slice(&fragment);
    }
    file
}

/// The `prft` right after the `styp`: version 1, flags 1, reference_track_ID 1 and the
/// times handed in. (FFmpeg ignores `prft` when reading, so the bytes are checked here.)
fn check_prft(fragment: &[u8], reference: &ProducerReference) {
    assert_eq!(&fragment[4..8], b"styp");
    let at = u32::from_be_bytes(fragment[0..4].try_into().unwrap()) as usize;
    let prft = &fragment[at..at + 32];
    assert_eq!(&prft[..8], b"\x00\x00\x00\x20prft");
    assert_eq!(&prft[8..16], [1, 0, 0, 1, 0, 0, 0, 1]);
    assert_eq!(prft[16..24], reference.ntp_timestamp.to_be_bytes());
    assert_eq!(prft[24..32], reference.media_time.to_be_bytes());
    assert_eq!(&fragment[at + 36..at + 40], b"moof");
}

/// `key=value` lines of ffprobe's stream section.
fn stream_info(file: &Path) -> Vec<(String, String)> {
    let (out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-show_streams",
            "-of",
            "default=nw=1",
            p(file),
        ],
    );
    assert_eq!(err, "", "ffprobe complained about the CMAF file");
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn field<'a>(info: &'a [(String, String)], key: &str) -> &'a str {
    info.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("ffprobe did not report {key}: {info:?}"))
}

/// (pts, dts, key) of every packet ffprobe reads from our file.
fn read_back(file: &Path) -> Vec<(i64, i64, bool)> {
    let (out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "packet=pts,dts,flags",
            "-of",
            "csv=p=0",
            p(file),
        ],
    );
    assert_eq!(err, "", "ffprobe complained about the CMAF file");
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].starts_with('K'),
            )
        })
        .collect()
}

fn decodes_cleanly(file: &Path) {
    let (_, err) = run("ffmpeg", &["-v", "error", "-i", p(file), "-f", "null", "-"]);
    assert_eq!(err, "", "ffmpeg reported errors decoding the CMAF file");
}

/// Cuts at every keyframe: each GOP a segment, the first one split into two parts.
fn video_cuts(packets: &[Packet]) -> Vec<Cut> {
    let keys: Vec<usize> = (0..packets.len()).filter(|&i| packets[i].key).collect();
    assert_eq!(keys.len(), 2, "expected two GOPs, keyframes at {keys:?}");
    vec![
        Cut {
            range: 0..10,
            segment_start: true,
        },
        Cut {
            range: 10..keys[1],
            segment_start: false,
        },
        Cut {
            range: keys[1]..packets.len(),
            segment_start: true,
        },
    ]
}

fn check_video(dir: &TempDir, track: &Track, packets: &[Packet], codec: &str, tag: &str) {
    // The reorder delay of the first keyframe (see the crate docs).
    let delay = packets[0].pts - packets[0].dts;
    assert!(delay > 0, "the source should have B-frames");
    let file = dir.path("out.mp4");
    std::fs::write(&file, package(track, packets, delay, &video_cuts(packets))).unwrap();

    let info = stream_info(&file);
    assert_eq!(field(&info, "codec_name"), codec);
    assert_eq!(field(&info, "codec_tag_string"), tag);
    assert_eq!(field(&info, "width"), "320");
    assert_eq!(field(&info, "height"), "240");
    assert_eq!(field(&info, "nb_read_frames"), "50");
    assert_eq!(field(&info, "time_base"), format!("1/{}", track.timescale));

    // Written: decode time dts + delay, composition offset pts - dts - delay, so the
    // presentation time is the source pts. FFmpeg's mov demuxer does not present negative
    // offsets as such: it adds the largest negative offset of the file (its `dts_shift`)
    // to every pts so that pts >= dts. Expect exactly that constant.
    let dts_shift = packets
        .iter()
        .map(|pk| -(pk.pts - pk.dts - delay))
        .max()
        .unwrap()
        .max(0);
    assert!(
        dts_shift > 0,
        "B-frames should need negative composition offsets"
    );
    let got = read_back(&file);
    let want: Vec<(i64, i64, bool)> = packets
        .iter()
        .map(|pk| (pk.pts + dts_shift, pk.dts + delay, pk.key))
        .collect();
    assert_eq!(
        got, want,
        "pts, dts (shifted by the reorder delay) and keyframes"
    );
    decodes_cleanly(&file);
}

#[test]
fn h264_with_b_frames_round_trips_through_ffmpeg() {
    let dir = TempDir::new("h264");
    let src = dir.path("src.mp4");
    run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-g",
            "25",
            "-bf",
            "2",
            "-video_track_timescale",
            "90000",
            p(&src),
        ],
    );
    let (timescale, packets) = packets(&dir, &src, "rawvideo");
    assert_eq!(packets.len(), 50);
    let units = parameter_sets(&dir, &src, "h264_mp4toannexb", "h264");
    let sps: Vec<Bytes> = units.iter().filter(|u| u[0] & 0x1F == 7).cloned().collect();
    let pps: Vec<Bytes> = units.iter().filter(|u| u[0] & 0x1F == 8).cloned().collect();
    let config = AvcConfig::from_parameter_sets(&sps, &pps).unwrap();
    let track = Track {
        id: TrackId(1),
        timescale,
        config: CodecConfig::H264(config),
    };
    check_video(&dir, &track, &packets, "h264", "avc1");
}

#[test]
fn h265_with_b_frames_round_trips_through_ffmpeg() {
    let dir = TempDir::new("h265");
    let src = dir.path("src.mp4");
    run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-t",
            "2",
            "-c:v",
            "libx265",
            "-x265-params",
            "log-level=error:keyint=25:min-keyint=25:scenecut=0:bframes=2:open-gop=0",
            "-tag:v",
            "hvc1",
            "-video_track_timescale",
            "90000",
            p(&src),
        ],
    );
    let (timescale, packets) = packets(&dir, &src, "rawvideo");
    assert_eq!(packets.len(), 50);
    let units = parameter_sets(&dir, &src, "hevc_mp4toannexb", "hevc");
    let of_type = |t: u8| -> Vec<Bytes> {
        units
            .iter()
            .filter(|u| (u[0] >> 1) & 0x3F == t)
            .cloned()
            .collect()
    };
    let config = HevcConfig::from_parameter_sets(&of_type(32), &of_type(33), &of_type(34)).unwrap();
    let track = Track {
        id: TrackId(1),
        timescale,
        config: CodecConfig::H265(config),
    };
    check_video(&dir, &track, &packets, "hevc", "hvc1");
}

#[test]
fn aac_from_adts_round_trips_through_ffmpeg() {
    let dir = TempDir::new("aac");
    let adts = dir.path("src.aac");
    run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "2",
            "-ac",
            "2",
            "-c:a",
            "aac",
            "-f",
            "adts",
            p(&adts),
        ],
    );
    let data = Bytes::from(std::fs::read(&adts).unwrap());
    let (config, frames) = aac::adts_to_raw(&data).unwrap();
    assert_eq!((config.sample_rate, config.channels), (48000, 2));
    let per_frame = i64::from(config.samples_per_frame());
    let packets: Vec<Packet> = frames
        .into_iter()
        .enumerate()
        .map(|(i, data)| Packet {
            pts: i as i64 * per_frame,
            dts: i as i64 * per_frame,
            duration: per_frame,
            key: true,
            data,
        })
        .collect();
    let n = packets.len();
    let track = Track {
        id: TrackId(1),
        timescale: 48000,
        config: CodecConfig::Aac(config),
    };
    let cuts = [
        Cut {
            range: 0..20,
            segment_start: true,
        },
        Cut {
            range: 20..47,
            segment_start: false,
        },
        Cut {
            range: 47..n,
            segment_start: true,
        },
    ];
    let file = dir.path("out.mp4");
    std::fs::write(&file, package(&track, &packets, 0, &cuts)).unwrap();

    let info = stream_info(&file);
    assert_eq!(field(&info, "codec_name"), "aac");
    assert_eq!(field(&info, "codec_tag_string"), "mp4a");
    assert_eq!(field(&info, "profile"), "LC");
    assert_eq!(field(&info, "sample_rate"), "48000");
    assert_eq!(field(&info, "channels"), "2");
    assert_eq!(field(&info, "nb_read_frames"), n.to_string());
    let got = read_back(&file);
    let want: Vec<(i64, i64, bool)> = packets.iter().map(|pk| (pk.pts, pk.dts, true)).collect();
    assert_eq!(got, want);
    decodes_cleanly(&file);
}

#[test]
fn opus_round_trips_through_ffmpeg() {
    let dir = TempDir::new("opus");
    let src = dir.path("src.mp4");
    run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "2",
            "-ac",
            "2",
            "-c:a",
            "libopus",
            p(&src),
        ],
    );
    let (timescale, packets) = packets(&dir, &src, "s16le");
    assert_eq!(timescale, 48000);
    // libopus primes with 312 samples: the source starts at -312.
    let pre_skip = -packets[0].dts;
    assert_eq!(pre_skip, 312);
    let config = OpusConfig {
        channels: 2,
        pre_skip: pre_skip as u16,
        input_sample_rate: 48000,
        output_gain: 0,
    };
    let track = Track {
        id: TrackId(1),
        timescale,
        config: CodecConfig::Opus(config),
    };
    let n = packets.len();
    let cuts = [
        Cut {
            range: 0..30,
            segment_start: true,
        },
        Cut {
            range: 30..n,
            segment_start: false,
        },
    ];
    let file = dir.path("out.mp4");
    std::fs::write(&file, package(&track, &packets, pre_skip, &cuts)).unwrap();

    let info = stream_info(&file);
    assert_eq!(field(&info, "codec_name"), "opus");
    assert_eq!(field(&info, "codec_tag_string"), "Opus");
    assert_eq!(field(&info, "sample_rate"), "48000");
    assert_eq!(field(&info, "channels"), "2");
    assert_eq!(field(&info, "nb_read_frames"), n.to_string());
    let got = read_back(&file);
    assert_eq!(got.len(), n);
    decodes_cleanly(&file);
}
