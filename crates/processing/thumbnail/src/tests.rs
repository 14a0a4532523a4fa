//! Against the real ffmpeg (skipped with a note where it is missing): fragmented MP4 made
//! by ffmpeg itself stands in for the packager's init section and segment.

use std::time::Duration;

use bytes::Bytes;

use super::*;

fn ffmpeg() -> Option<PathBuf> {
    let p = PathBuf::from("ffmpeg");
    let ok = std::process::Command::new(&p)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("ffmpeg missing: skipped");
    }
    ok.then_some(p)
}

/// One second of 640x360 H.264 as fragmented MP4 (moov, then fragments from a keyframe).
fn fragmented_mp4(ffmpeg: &Path) -> Bytes {
    let out = std::process::Command::new(ffmpeg)
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
        ])
        .args([
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
        ])
        .args([
            "-f",
            "mp4",
            "-movflags",
            "frag_keyframe+empty_moov+default_base_moof",
            "pipe:1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Bytes::from(out.stdout)
}

fn render(ffmpeg: &Path) -> Render {
    Render {
        ffmpeg: ffmpeg.to_owned(),
        timeout: Duration::from_secs(20),
    }
}

/// This process's leftover temporary pictures.
fn leftovers() -> usize {
    let prefix = format!("starling-thumb-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .count()
}

#[tokio::test]
async fn a_keyframe_becomes_a_jpeg_at_full_and_small_size() {
    let Some(ff) = ffmpeg() else { return };
    let media = fragmented_mp4(&ff);
    // Handed over in two pieces, as the origin holds init and segment apart.
    let (a, b) = media.split_at(media.len() / 3);
    let pieces = [Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)];
    let full = render(&ff).jpeg(&pieces, None).await.unwrap();
    assert_eq!(jpeg_size(&full), Some((640, 360)));
    // Three sizes from one run; never upscaled.
    let all = render(&ff)
        .jpegs(&pieces, &[Some(1920), Some(320), Some(100)])
        .await
        .unwrap();
    let sizes: Vec<_> = all.iter().map(|j| jpeg_size(j)).collect();
    assert_eq!(sizes, [Some((640, 360)), Some((320, 180)), Some((100, 56))]);
    assert!(all[1].len() < all[0].len());
    assert_eq!(leftovers(), 0, "temporary pictures are removed");
}

#[tokio::test]
async fn bad_input_and_a_missing_ffmpeg_are_named() {
    let Some(ff) = ffmpeg() else { return };
    let err = render(&ff)
        .jpegs(
            &[Bytes::from_static(b"not an mp4 at all")],
            &[None, Some(320)],
        )
        .await
        .unwrap_err();
    assert_eq!(
        leftovers(),
        0,
        "temporary pictures are removed after a failure too"
    );
    assert!(matches!(err, ThumbError::Failed { .. }), "{err}");
    assert!(err.to_string().contains("ffmpeg made no picture"), "{err}");
    let err = render(Path::new("/nonexistent/ffmpeg"))
        .jpeg(&[Bytes::from_static(b"x")], None)
        .await
        .unwrap_err();
    assert!(matches!(err, ThumbError::FfmpegMissing(_)), "{err}");
    assert!(!ffmpeg_runs(Path::new("/nonexistent/ffmpeg")).await);
    assert!(ffmpeg_runs(&ff).await);
}

#[test]
fn jpeg_sizes_are_read_from_the_frame_header_only() {
    assert_eq!(jpeg_size(b""), None);
    assert_eq!(jpeg_size(b"\xFF\xD8"), None);
    assert_eq!(jpeg_size(b"GIF89a"), None);
    // SOI, an APP0 of 4 bytes, SOF0 with height 2 and width 3.
    let j = [
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x02,
        0x00, 0x03,
    ];
    assert_eq!(jpeg_size(&j), Some((3, 2)));
    // A segment length that runs past the end.
    assert_eq!(jpeg_size(&[0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xFF]), None);
}
