//! A minimal H.264 (ITU-T H.264 / ISO/IEC 14496-10) bitstream *writer* for synthetic
//! pictures: parameter sets, IDR slices made only of I_PCM macroblocks, and P slices in
//! which unchanged macroblocks are P_Skip and changed ones are I_PCM.
//!
//! It is not an encoder: there is no prediction, transform or rate control. Because I_PCM
//! carries the samples verbatim and deblocking is disabled in every slice, the decoded
//! picture is bit-exactly the picture handed in, and a P_Skip macroblock (motion vector
//! predicted from neighbours that are all intra or zero-motion skips, hence zero) copies
//! the reference exactly. This module never reads a clock and never panics on any picture.

use bytes::{BufMut, Bytes, BytesMut};

use crate::picture::Yuv420;

/// `log2_max_frame_num_minus4` in the SPS: frame_num counts modulo 2^8.
const LOG2_MAX_FRAME_NUM: u32 = 8;
/// `mb_type` of I_PCM in an I slice (Table 7-11).
const MB_TYPE_I_PCM_IN_I: u32 = 25;
/// `mb_type` of I_PCM in a P slice: intra types follow the 5 P types (7.4.5, Table 7-13).
const MB_TYPE_I_PCM_IN_P: u32 = 5 + MB_TYPE_I_PCM_IN_I;
/// Bytes of one I_PCM macroblock at 8 bits, 4:2:0: 256 luma + 2 × 64 chroma samples.
pub(crate) const PCM_MB_BYTES: usize = 384;

/// Writes the bits of an RBSP, most significant bit first.
#[derive(Debug, Default)]
pub(crate) struct BitWriter {
    out: Vec<u8>,
    /// Bits not yet forming a whole byte, right-aligned.
    acc: u8,
    /// How many bits of `acc` are used (0..8).
    used: u32,
}

impl BitWriter {
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        BitWriter {
            out: Vec::with_capacity(bytes),
            acc: 0,
            used: 0,
        }
    }

    fn bit(&mut self, b: bool) {
        self.acc = (self.acc << 1) | u8::from(b);
        self.used += 1;
        if self.used == 8 {
            self.out.push(self.acc);
            self.acc = 0;
            self.used = 0;
        }
    }

    /// `u(n)`: the low `n` bits of `v` (n ≤ 64).
    pub(crate) fn u(&mut self, n: u32, v: u64) {
        for i in (0..n.min(64)).rev() {
            self.bit((v >> i) & 1 == 1);
        }
    }

    pub(crate) fn flag(&mut self, b: bool) {
        self.bit(b);
    }

    /// `ue(v)`: unsigned Exp-Golomb (9.1).
    pub(crate) fn ue(&mut self, v: u32) {
        let x = u64::from(v) + 1;
        let len = 64 - x.leading_zeros();
        self.u(len - 1, 0);
        self.u(len, x);
    }

    /// `se(v)`: signed Exp-Golomb, mapped as in Table 9-3 (k > 0 → 2k − 1, k ≤ 0 → −2k).
    pub(crate) fn se(&mut self, v: i32) {
        let k = i64::from(v);
        let code = if k > 0 { 2 * k - 1 } else { -2 * k };
        // |i32| ≤ 2^31, so code ≤ 2^32 and code + 1 fits the u64 `ue` arithmetic.
        let x = code as u64 + 1;
        let len = 64 - x.leading_zeros();
        self.u(len - 1, 0);
        self.u(len, x);
    }

    /// Zero bits up to the next byte boundary (`pcm_alignment_zero_bit`, `rbsp_alignment_zero_bit`).
    pub(crate) fn align_zero(&mut self) {
        while self.used != 0 {
            self.bit(false);
        }
    }

    /// Whole bytes at a byte boundary (PCM samples): aligns first if needed.
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.align_zero();
        self.out.extend_from_slice(b);
    }

    /// `rbsp_trailing_bits()`: the stop bit and alignment; returns the finished RBSP.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.bit(true);
        self.align_zero();
        self.out
    }
}

/// Wraps an RBSP in a NAL unit: the header byte, then the payload with an
/// `emulation_prevention_three_byte` after every two zero bytes followed by a byte ≤ 3
/// (7.4.1), so no start code can appear inside the unit.
pub(crate) fn nal_unit(nal_ref_idc: u8, nal_unit_type: u8, rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + rbsp.len() / 64 + 1);
    out.push(((nal_ref_idc & 3) << 5) | (nal_unit_type & 0x1F));
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}

/// The coded geometry and timing the parameter sets describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Visible picture size (after cropping).
    pub width: u32,
    pub height: u32,
    /// Coded size in macroblocks.
    pub mb_width: u32,
    pub mb_height: u32,
    pub fps: u32,
    pub level_idc: u8,
}

/// (level_idc, MaxMBPS, MaxFS) from Table A-1.
const LEVELS: [(u8, u64, u64); 17] = [
    (10, 1_485, 99),
    (11, 3_000, 396),
    (12, 6_000, 396),
    (13, 11_880, 396),
    (21, 19_800, 792),
    (22, 20_250, 1_620),
    (30, 40_500, 1_620),
    (31, 108_000, 3_600),
    (32, 216_000, 5_120),
    (40, 245_760, 8_192),
    (42, 522_240, 8_704),
    (50, 589_824, 22_080),
    (51, 983_040, 36_864),
    (52, 2_073_600, 36_864),
    (60, 4_177_920, 139_264),
    (61, 8_355_840, 139_264),
    (62, 16_711_680, 139_264),
];

impl Layout {
    /// The layout for a visible size (even, non-zero) and frame rate, with the lowest level
    /// whose frame size, macroblock rate and side-length limits (A.3.1) fit; `None` if none
    /// does. Bit-rate limits are not considered: I_PCM pictures exceed MinCR anyway.
    pub(crate) fn new(width: u32, height: u32, fps: u32) -> Option<Self> {
        let mb_width = width.div_ceil(16);
        let mb_height = height.div_ceil(16);
        let frame_mbs = u64::from(mb_width) * u64::from(mb_height);
        let mb_rate = frame_mbs * u64::from(fps);
        let (level_idc, _, _) = LEVELS.iter().copied().find(|&(_, max_mbps, max_fs)| {
            let side = max_fs * 8;
            frame_mbs <= max_fs
                && mb_rate <= max_mbps
                && u64::from(mb_width) * u64::from(mb_width) <= side
                && u64::from(mb_height) * u64::from(mb_height) <= side
        })?;
        Some(Layout {
            width,
            height,
            mb_width,
            mb_height,
            fps,
            level_idc,
        })
    }

    pub(crate) fn mb_count(&self) -> usize {
        self.mb_width as usize * self.mb_height as usize
    }
}

/// `seq_parameter_set_rbsp()` (7.3.2.1) as a NAL unit: Constrained Baseline
/// (profile_idc 66 with constraint_set0 and constraint_set1), POC type 2 (output order is
/// decode order), one reference frame, frame cropping to the visible size, and a VUI with
/// BT.709 limited-range colour, the frame rate and `max_num_reorder_frames = 0` so a
/// decoder outputs every picture as soon as it is decoded.
pub(crate) fn sps(layout: &Layout) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.u(8, 66); // profile_idc: Baseline
    w.u(8, 0b1100_0000); // constraint_set0_flag, constraint_set1_flag: Constrained Baseline
    w.u(8, layout.level_idc.into());
    w.ue(0); // seq_parameter_set_id
    w.ue(LOG2_MAX_FRAME_NUM - 4); // log2_max_frame_num_minus4
    w.ue(2); // pic_order_cnt_type
    w.ue(1); // max_num_ref_frames
    w.flag(false); // gaps_in_frame_num_value_allowed_flag
    w.ue(layout.mb_width - 1); // pic_width_in_mbs_minus1
    w.ue(layout.mb_height - 1); // pic_height_in_map_units_minus1
    w.flag(true); // frame_mbs_only_flag
    w.flag(true); // direct_8x8_inference_flag
                  // 4:2:0 progressive: crop offsets count in units of 2 samples (CropUnitX/Y, 7-19/7-20).
    let crop_right = (layout.mb_width * 16 - layout.width) / 2;
    let crop_bottom = (layout.mb_height * 16 - layout.height) / 2;
    let cropping = crop_right != 0 || crop_bottom != 0;
    w.flag(cropping); // frame_cropping_flag
    if cropping {
        w.ue(0); // frame_crop_left_offset
        w.ue(crop_right);
        w.ue(0); // frame_crop_top_offset
        w.ue(crop_bottom);
    }
    w.flag(true); // vui_parameters_present_flag
    vui(&mut w, layout);
    nal_unit(3, 7, &w.finish())
}

/// `vui_parameters()` (E.1.1).
fn vui(w: &mut BitWriter, layout: &Layout) {
    w.flag(false); // aspect_ratio_info_present_flag (square samples are the default)
    w.flag(false); // overscan_info_present_flag
    w.flag(true); // video_signal_type_present_flag
    w.u(3, 5); // video_format: unspecified
    w.flag(false); // video_full_range_flag: 16..235 luma, as the picture is drawn
    w.flag(true); // colour_description_present_flag
    w.u(8, 1); // colour_primaries: BT.709
    w.u(8, 1); // transfer_characteristics: BT.709
    w.u(8, 1); // matrix_coefficients: BT.709, the matrix the picture's colours use
    w.flag(false); // chroma_loc_info_present_flag
    w.flag(true); // timing_info_present_flag
    w.u(32, 1); // num_units_in_tick
    w.u(32, 2 * u64::from(layout.fps)); // time_scale: two ticks (fields) per frame
    w.flag(true); // fixed_frame_rate_flag
    w.flag(false); // nal_hrd_parameters_present_flag
    w.flag(false); // vcl_hrd_parameters_present_flag
    w.flag(false); // pic_struct_present_flag
    w.flag(true); // bitstream_restriction_flag
    w.flag(true); // motion_vectors_over_pic_boundaries_flag
    w.ue(0); // max_bytes_per_pic_denom: no limit
    w.ue(0); // max_bits_per_mb_denom: no limit
    w.ue(15); // log2_max_mv_length_horizontal
    w.ue(15); // log2_max_mv_length_vertical
    w.ue(0); // max_num_reorder_frames: output at once
    w.ue(1); // max_dec_frame_buffering (≥ max_num_ref_frames)
}

/// `pic_parameter_set_rbsp()` (7.3.2.2) as a NAL unit: CAVLC, one reference, QP 26, and
/// `deblocking_filter_control_present_flag` so every slice can switch the filter off.
pub(crate) fn pps() -> Vec<u8> {
    let mut w = BitWriter::default();
    w.ue(0); // pic_parameter_set_id
    w.ue(0); // seq_parameter_set_id
    w.flag(false); // entropy_coding_mode_flag: CAVLC
    w.flag(false); // bottom_field_pic_order_in_frame_present_flag
    w.ue(0); // num_slice_groups_minus1
    w.ue(0); // num_ref_idx_l0_default_active_minus1
    w.ue(0); // num_ref_idx_l1_default_active_minus1
    w.flag(false); // weighted_pred_flag
    w.u(2, 0); // weighted_bipred_idc
    w.se(0); // pic_init_qp_minus26
    w.se(0); // pic_init_qs_minus26
    w.se(0); // chroma_qp_index_offset
    w.flag(true); // deblocking_filter_control_present_flag
    w.flag(false); // constrained_intra_pred_flag
    w.flag(false); // redundant_pic_cnt_present_flag
    nal_unit(3, 8, &w.finish())
}

/// Writes access units (one slice per picture) for a sequence of pictures, keeping the
/// `frame_num` and `idr_pic_id` state the slice headers need.
#[derive(Debug)]
pub(crate) struct SliceWriter {
    layout: Layout,
    frame_num: u32,
    idr_pic_id: u32,
}

impl SliceWriter {
    pub(crate) fn new(layout: Layout) -> Self {
        SliceWriter {
            layout,
            frame_num: 0,
            idr_pic_id: 0,
        }
    }

    /// An IDR access unit: one I slice of I_PCM macroblocks, as a 4-byte length-prefixed NAL unit.
    pub(crate) fn idr(&mut self, pic: &Yuv420) -> Bytes {
        self.frame_num = 0;
        let mut w = self.slice_header(true);
        let mut mb = [0u8; PCM_MB_BYTES];
        for addr in 0..self.layout.mb_count() {
            w.ue(MB_TYPE_I_PCM_IN_I);
            pic.mb_samples(addr, &mut mb);
            w.bytes(&mb);
        }
        // Consecutive IDR pictures must differ in idr_pic_id (7.4.3); it is ue(v), 0..=65535.
        self.idr_pic_id = (self.idr_pic_id + 1) % 65_536;
        length_prefixed(&nal_unit(3, 5, &w.finish()))
    }

    /// A P access unit: macroblocks for which `changed(addr)` is false are skipped (they
    /// copy the previous picture), the others are sent as I_PCM.
    pub(crate) fn p(&mut self, pic: &Yuv420, changed: impl Fn(usize) -> bool) -> Bytes {
        self.frame_num = (self.frame_num + 1) % (1 << LOG2_MAX_FRAME_NUM);
        let mut w = self.slice_header(false);
        let mut mb = [0u8; PCM_MB_BYTES];
        let mut skip_run: u32 = 0;
        for addr in 0..self.layout.mb_count() {
            if !changed(addr) {
                skip_run += 1;
                continue;
            }
            w.ue(skip_run); // mb_skip_run
            skip_run = 0;
            w.ue(MB_TYPE_I_PCM_IN_P);
            pic.mb_samples(addr, &mut mb);
            w.bytes(&mb);
        }
        if skip_run > 0 {
            // A final run of skipped macroblocks ends the slice: more_rbsp_data() is false after it.
            w.ue(skip_run);
        }
        length_prefixed(&nal_unit(2, 1, &w.finish()))
    }

    /// `slice_header()` (7.3.3) for a whole-picture slice with deblocking disabled.
    fn slice_header(&self, idr: bool) -> BitWriter {
        let mut w = BitWriter::with_capacity(if idr {
            self.layout.mb_count() * (PCM_MB_BYTES + 2) + 16
        } else {
            1024
        });
        w.ue(0); // first_mb_in_slice
        w.ue(if idr { 7 } else { 5 }); // slice_type: I or P, the same for all slices
        w.ue(0); // pic_parameter_set_id
        w.u(LOG2_MAX_FRAME_NUM, self.frame_num.into()); // frame_num
        if idr {
            w.ue(self.idr_pic_id);
        } else {
            w.flag(false); // num_ref_idx_active_override_flag
            w.flag(false); // ref_pic_list_modification_flag_l0
        }
        // dec_ref_pic_marking() (every picture is a reference)
        if idr {
            w.flag(false); // no_output_of_prior_pics_flag
            w.flag(false); // long_term_reference_flag
        } else {
            w.flag(false); // adaptive_ref_pic_marking_mode_flag: sliding window
        }
        w.se(0); // slice_qp_delta
        w.ue(1); // disable_deblocking_filter_idc: off, so PCM samples decode exactly
        w
    }
}

fn length_prefixed(nal: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(nal.len() + 4);
    // A NAL unit here is at most one picture of PCM (a few MB even at 4096x4096 = 24 MiB).
    out.put_u32(u32::try_from(nal.len()).unwrap_or(u32::MAX));
    out.put_slice(nal);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(f: impl FnOnce(&mut BitWriter)) -> Vec<u8> {
        let mut w = BitWriter::default();
        f(&mut w);
        w.align_zero();
        w.out
    }

    #[test]
    fn exp_golomb_codes_match_table_9_2() {
        // ue: 0 → 1, 1 → 010, 2 → 011, 3 → 00100, 8 → 0001001
        assert_eq!(bits(|w| w.ue(0)), [0b1000_0000]);
        assert_eq!(bits(|w| w.ue(1)), [0b0100_0000]);
        assert_eq!(bits(|w| w.ue(2)), [0b0110_0000]);
        assert_eq!(bits(|w| w.ue(3)), [0b0010_0000]);
        assert_eq!(bits(|w| w.ue(8)), [0b0001_0010]);
        assert_eq!(bits(|w| w.ue(30)), [0b0000_1111, 0b1000_0000]);
        // 2^32 - 1 needs 65 bits: 32 zeros, then 1 and 32 zeros.
        assert_eq!(bits(|w| w.ue(u32::MAX)), [0, 0, 0, 0, 0x80, 0, 0, 0, 0]);
        // se: 1 → 010, -1 → 011, 2 → 00100, -2 → 00101, 0 → 1
        assert_eq!(bits(|w| w.se(0)), [0b1000_0000]);
        assert_eq!(bits(|w| w.se(1)), [0b0100_0000]);
        assert_eq!(bits(|w| w.se(-1)), [0b0110_0000]);
        assert_eq!(bits(|w| w.se(2)), [0b0010_0000]);
        assert_eq!(bits(|w| w.se(-2)), [0b0010_1000]);
        assert_eq!(bits(|w| w.se(i32::MIN)).len(), 9);
    }

    #[test]
    fn trailing_bits_and_alignment() {
        let mut w = BitWriter::default();
        w.u(3, 0b101);
        assert_eq!(w.finish(), [0b1011_0000]);
        let mut w = BitWriter::default();
        w.u(8, 0xAB);
        assert_eq!(w.finish(), [0xAB, 0x80]);
        let mut w = BitWriter::default();
        w.flag(true);
        w.bytes(&[1, 2]);
        assert_eq!(w.finish(), [0x80, 1, 2, 0x80]);
    }

    #[test]
    fn emulation_prevention() {
        assert_eq!(
            nal_unit(3, 5, &[0, 0, 0, 0, 0, 1, 0, 0, 4, 0, 0, 3, 0, 0]),
            [0x65, 0, 0, 3, 0, 0, 3, 0, 1, 0, 0, 4, 0, 0, 3, 3, 0, 0]
        );
        assert_eq!(nal_unit(2, 1, &[0, 0, 2]), [0x41, 0, 0, 3, 2]);
        assert_eq!(nal_unit(0, 6, &[1, 2, 3]), [0x06, 1, 2, 3]);
    }

    #[test]
    fn levels_fit_the_picture() {
        let l = Layout::new(640, 360, 30).unwrap();
        assert_eq!((l.mb_width, l.mb_height, l.level_idc), (40, 23, 30));
        assert_eq!(Layout::new(1280, 720, 30).unwrap().level_idc, 31);
        assert_eq!(Layout::new(1920, 1080, 30).unwrap().level_idc, 40);
        assert_eq!(Layout::new(176, 144, 15).unwrap().level_idc, 10);
        assert_eq!(Layout::new(640, 360, 60).unwrap().level_idc, 31);
        assert_eq!(Layout::new(8192, 16, 1).unwrap().level_idc, 51);
        // 1057 macroblocks is a longer side than Sqrt(MaxFS * 8) allows at any level.
        assert_eq!(Layout::new(1057 * 16, 16, 1), None);
        assert_eq!(Layout::new(4096, 2304, 500), None);
    }
}
