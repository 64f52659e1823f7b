//! A small H.264 sequence parameter set reader: the picture size (after cropping) for the
//! sample entry and the room's status, and the RFC 6381 codec string `avc1.PPCCLL` for
//! playlists. Only the fields before the VUI are read; the input is untrusted, so every read
//! is bounds-checked.

/// Why an SPS could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpsError {
    #[error("SPS ends early (at bit {0})")]
    Truncated(usize),
    #[error("not an SPS NAL unit (type {0})")]
    NotSps(u8),
    #[error("SPS field {field} out of range: {value}")]
    OutOfRange { field: &'static str, value: u64 },
}

/// What barrage needs from an SPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    pub profile_idc: u8,
    /// The constraint_set flags byte (profile compatibility).
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub chroma_format_idc: u32,
    pub bit_depth_luma: u32,
    pub bit_depth_chroma: u32,
    /// Displayed width and height in pixels, after frame cropping.
    pub width: u32,
    pub height: u32,
}

impl Sps {
    /// The RFC 6381 codec string, e.g. `avc1.64000d`.
    pub fn codec_string(&self) -> String {
        avc_codec_string(self.profile_idc, self.constraint_flags, self.level_idc)
    }
}

/// `avc1.PPCCLL` from profile, constraint flags and level (also in the avcC header).
pub fn avc_codec_string(profile: u8, constraints: u8, level: u8) -> String {
    format!("avc1.{profile:02x}{constraints:02x}{level:02x}")
}

/// Removes emulation-prevention bytes (`00 00 03` -> `00 00`) from a NAL unit payload.
pub fn remove_emulation_prevention(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// An MSB-first bit reader with exp-Golomb codes.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader { data, pos: 0 }
    }

    fn bit(&mut self) -> Result<u32, SpsError> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or(SpsError::Truncated(self.pos))?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Result<u32, SpsError> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    fn flag(&mut self) -> Result<bool, SpsError> {
        Ok(self.bit()? == 1)
    }

    /// Unsigned exp-Golomb; values past 32 bits are refused.
    fn ue(&mut self) -> Result<u32, SpsError> {
        let mut zeros = 0u32;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(SpsError::OutOfRange {
                    field: "exp-Golomb code",
                    value: u64::from(zeros),
                });
            }
        }
        let rest = u64::from(self.bits(zeros)?);
        let value = (1u64 << zeros) - 1 + rest;
        u32::try_from(value).map_err(|_| SpsError::OutOfRange {
            field: "exp-Golomb code",
            value,
        })
    }

    /// Signed exp-Golomb.
    fn se(&mut self) -> Result<i64, SpsError> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }

    /// ue(v) with an upper bound from the spec.
    fn ue_max(&mut self, field: &'static str, max: u32) -> Result<u32, SpsError> {
        let v = self.ue()?;
        if v > max {
            return Err(SpsError::OutOfRange {
                field,
                value: u64::from(v),
            });
        }
        Ok(v)
    }
}

/// Profiles whose SPS carries chroma format, bit depths and scaling lists.
fn has_chroma_fields(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), SpsError> {
    let mut last = 8i64;
    let mut next = 8i64;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(SpsError::OutOfRange {
                    field: "delta_scale",
                    value: delta.unsigned_abs(),
                });
            }
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Parses an SPS NAL unit (with its one-byte NAL header, as stored in avcC).
pub fn parse_sps(nal: &[u8]) -> Result<Sps, SpsError> {
    let header = *nal.first().ok_or(SpsError::Truncated(0))?;
    if header & 0x1f != 7 {
        return Err(SpsError::NotSps(header & 0x1f));
    }
    let rbsp = remove_emulation_prevention(&nal[1..]);
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.bits(8)? as u8;
    let constraint_flags = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    r.ue_max("seq_parameter_set_id", 31)?;

    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    let mut bit_depth_luma = 8;
    let mut bit_depth_chroma = 8;
    if has_chroma_fields(profile_idc) {
        chroma_format_idc = r.ue_max("chroma_format_idc", 3)?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag()?;
        }
        bit_depth_luma = r.ue_max("bit_depth_luma_minus8", 6)? + 8;
        bit_depth_chroma = r.ue_max("bit_depth_chroma_minus8", 6)? + 8;
        r.flag()?; // qpprime_y_zero_transform_bypass_flag
        if r.flag()? {
            // seq_scaling_matrix_present_flag
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue_max("log2_max_frame_num_minus4", 12)?;
    match r.ue_max("pic_order_cnt_type", 2)? {
        0 => {
            r.ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)?;
        }
        1 => {
            r.flag()?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue_max("num_ref_frames_in_pic_order_cnt_cycle", 255)?;
            for _ in 0..cycle {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.flag()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue_max("pic_width_in_mbs_minus1", 1023)?) + 1;
    let height_map_units = u64::from(r.ue_max("pic_height_in_map_units_minus1", 1023)?) + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        r.flag()?; // mb_adaptive_frame_field_flag
    }
    r.flag()?; // direct_8x8_inference_flag
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let mut width = width_mbs * 16;
    let mut height = height_map_units * 16 * field_factor;
    if r.flag()? {
        // frame_cropping_flag
        let left = u64::from(r.ue()?);
        let right = u64::from(r.ue()?);
        let top = u64::from(r.ue()?);
        let bottom = u64::from(r.ue()?);
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (sub_width, sub_height) = match chroma_array_type {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let crop_x = (left + right) * sub_width;
        let crop_y = (top + bottom) * sub_height * field_factor;
        if crop_x >= width || crop_y >= height {
            return Err(SpsError::OutOfRange {
                field: "frame_crop",
                value: crop_x.max(crop_y),
            });
        }
        width -= crop_x;
        height -= crop_y;
    }
    Ok(Sps {
        profile_idc,
        constraint_flags,
        level_idc,
        chroma_format_idc,
        bit_depth_luma,
        bit_depth_chroma,
        width: width as u32,
        height: height as u32,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The SPS of tests/data/ffmpeg_push_6s.flv (x264, High, 320x180: cropped from 320x192).
    pub(crate) const FFMPEG_320X180: &[u8] = &[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0x9f, 0x9f, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
    ];

    /// Builds NAL units bit by bit, adding emulation prevention like an encoder.
    #[derive(Default)]
    struct BitWriter {
        bits: Vec<bool>,
    }

    impl BitWriter {
        fn bits(&mut self, v: u64, n: u32) -> &mut Self {
            for i in (0..n).rev() {
                self.bits.push((v >> i) & 1 == 1);
            }
            self
        }
        fn ue(&mut self, v: u64) -> &mut Self {
            let x = v + 1;
            let len = 64 - x.leading_zeros();
            self.bits(0, len - 1).bits(x, len)
        }
        fn se(&mut self, v: i64) -> &mut Self {
            let k = if v > 0 { 2 * v - 1 } else { -2 * v };
            self.ue(k as u64)
        }
        fn nal(&mut self) -> Vec<u8> {
            self.bits.push(true); // rbsp_stop_one_bit
            while !self.bits.len().is_multiple_of(8) {
                self.bits.push(false);
            }
            let rbsp: Vec<u8> = self
                .bits
                .chunks(8)
                .map(|c| c.iter().fold(0u8, |a, b| (a << 1) | u8::from(*b)))
                .collect();
            let mut out = vec![0x67];
            let mut zeros = 0;
            for b in rbsp {
                if zeros >= 2 && b <= 3 {
                    out.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                out.push(b);
            }
            out
        }
    }

    #[test]
    fn emulation_prevention_is_removed() {
        assert_eq!(
            remove_emulation_prevention(&[0, 0, 3, 1, 0, 0, 3, 0, 3]),
            vec![0, 0, 1, 0, 0, 0, 3]
        );
        assert_eq!(
            remove_emulation_prevention(&[0, 3, 0, 0, 3]),
            vec![0, 3, 0, 0]
        );
    }

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 -> 0, 1, 2, 3, 4
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data);
        let got: Vec<u32> = (0..5).map(|_| r.ue().unwrap()).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        let data = [0b0100_1100, 0b1000_0000]; // se: 010 -> +1, 011 -> -1, 00100 -> +2
        let mut r = BitReader::new(&data);
        assert_eq!(
            (r.se().unwrap(), r.se().unwrap(), r.se().unwrap()),
            (1, -1, 2)
        );
        assert!(BitReader::new(&[0, 0, 0, 0, 0]).ue().is_err());
    }

    #[test]
    fn high_profile_with_cropping() {
        let sps = parse_sps(FFMPEG_320X180).unwrap();
        assert_eq!((sps.width, sps.height), (320, 180));
        assert_eq!(sps.profile_idc, 100);
        assert_eq!(sps.level_idc, 13);
        assert_eq!(sps.chroma_format_idc, 1);
        assert_eq!(sps.codec_string(), "avc1.64000d");
    }

    #[test]
    fn x264_profiles_and_sizes() {
        // Made with `ffmpeg -f lavfi -i testsrc=size=WxH -c:v libx264 -profile:v P -f h264`.
        let cases: [(&[u8], u32, u32, &str, u32); 4] = [
            (
                &[
                    0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00,
                    0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x24, 0x80,
                ],
                1280,
                720,
                "avc1.42c01f",
                1,
            ),
            (
                &[
                    0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44,
                    0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6,
                    0x58,
                ],
                1920,
                1080,
                "avc1.640028",
                1,
            ),
            (
                &[
                    0x67, 0xf4, 0x00, 0x1e, 0x91, 0x9b, 0x28, 0x14, 0x85, 0xfc, 0x7c, 0xf8, 0x08,
                    0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x1e, 0x07, 0x8b, 0x16, 0xcb,
                ],
                642,
                362,
                "avc1.f4001e",
                3,
            ),
            (
                &[
                    0x67, 0x7a, 0x00, 0x0d, 0xbc, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00,
                    0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
                ],
                320,
                240,
                "avc1.7a000d",
                2,
            ),
        ];
        for (nal, w, h, codec, chroma) in cases {
            let sps = parse_sps(nal).unwrap();
            assert_eq!((sps.width, sps.height), (w, h), "{codec}");
            assert_eq!(sps.codec_string(), codec);
            assert_eq!(sps.chroma_format_idc, chroma);
        }
    }

    #[test]
    fn scaling_lists_interlace_and_poc_type_1() {
        let mut w = BitWriter::default();
        w.bits(100, 8).bits(0, 8).bits(40, 8).ue(0); // profile, constraints, level, id
        w.ue(1).ue(0).ue(0).bits(0, 1); // 4:2:0, 8-bit, no bypass
        w.bits(1, 1); // seq_scaling_matrix_present_flag
        for i in 0..8 {
            match i {
                0 => {
                    // A full 4x4 list: first delta 8 (16), then flat.
                    w.bits(1, 1).se(8);
                    for _ in 1..16 {
                        w.se(0);
                    }
                }
                6 => {
                    // useDefaultScalingMatrix: the first delta brings next to 0.
                    w.bits(1, 1).se(-8);
                }
                _ => {
                    w.bits(0, 1);
                }
            }
        }
        w.ue(0).ue(1); // log2_max_frame_num_minus4, pic_order_cnt_type 1
        w.bits(0, 1).se(-2).se(1).ue(2).se(3).se(-3);
        w.ue(4).bits(0, 1); // max_num_ref_frames, gaps
        w.ue(119).ue(33); // 120 x 34 macroblock (field) units
        w.bits(0, 1).bits(1, 1).bits(1, 1); // interlaced, mbaff, direct_8x8
        w.bits(1, 1).ue(0).ue(0).ue(0).ue(2); // crop 8 rows (2 x 4) at the bottom
        w.bits(0, 1); // no VUI
        let nal = w.nal();
        let sps = parse_sps(&nal).unwrap();
        assert_eq!((sps.width, sps.height), (1920, 1080));
        assert_eq!(sps.codec_string(), "avc1.640028");
    }

    #[test]
    fn bad_sps_is_an_error() {
        assert_eq!(parse_sps(&[]), Err(SpsError::Truncated(0)));
        assert_eq!(parse_sps(&[0x68, 1, 2]), Err(SpsError::NotSps(8)));
        // Cut before the cropping fields end (byte 10): always an error, never a panic.
        for cut in 1..10 {
            assert!(parse_sps(&FFMPEG_320X180[..cut]).is_err(), "cut at {cut}");
        }
        for cut in 10..FFMPEG_320X180.len() {
            let _ = parse_sps(&FFMPEG_320X180[..cut]);
        }
        // Cropping everything away is refused.
        let mut w = BitWriter::default();
        w.bits(66, 8)
            .bits(0, 8)
            .bits(30, 8)
            .ue(0)
            .ue(0)
            .ue(0)
            .ue(0)
            .ue(1)
            .bits(0, 1);
        w.ue(0).ue(0).bits(1, 1).bits(1, 1);
        w.bits(1, 1).ue(8).ue(0).ue(0).ue(0).bits(0, 1);
        assert!(matches!(
            parse_sps(&w.nal()),
            Err(SpsError::OutOfRange {
                field: "frame_crop",
                ..
            })
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_sps_never_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut nal = vec![0x67];
            nal.extend(body);
            let _ = parse_sps(&nal);
        }
    }
}
