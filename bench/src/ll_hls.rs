//! Reading an LL-HLS media playlist the way a player at the live edge does: which part
//! to ask for next. Shared by the benches and the end-to-end tests.

/// The next part a blocking request can ask for: `(_HLS_msn, _HLS_part, URI)` from the
/// playlist's media sequence, its segments, the parts after the last segment and the
/// preload hint. None when the playlist has no preload hint (not live, or not LL-HLS).
pub fn next_part(playlist: &str) -> Option<(u64, u64, String)> {
    let seq: u64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))?
        .trim()
        .parse()
        .ok()?;
    let segments = playlist
        .lines()
        .filter(|l| l.starts_with("#EXTINF"))
        .count() as u64;
    let parts = playlist
        .lines()
        .rev()
        .take_while(|l| !l.starts_with("#EXTINF"))
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .count() as u64;
    let hint = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))?
        .split('"')
        .next()?
        .to_owned();
    Some((seq + segments, parts, hint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_part_follows_the_last_listed_one() {
        let pl = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-PART:DURATION=0.3,URI=\"s/7.0.m4s\"\n#EXTINF:2.0,\ns/7.m4s\n#EXT-X-PART:DURATION=0.3,URI=\"s/8.0.m4s\"\n#EXT-X-PART:DURATION=0.3,URI=\"s/8.1.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s/8.2.m4s\"\n";
        assert_eq!(next_part(pl), Some((8, 2, "s/8.2.m4s".to_owned())));
        assert_eq!(next_part("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:1\n"), None);
    }
}
