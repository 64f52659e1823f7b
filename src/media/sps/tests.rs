//! SPS reader tests: real x264 parameter sets and hand-built ones.

use super::*;

/// The SPS of tests/data/ffmpeg_push_6s.flv (x264, High, 320x180: cropped from 320x192).
pub(crate) const FFMPEG_320X180: &[u8] = &[
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0x9f, 0x9f, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
    0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
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
                0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
                0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x24, 0x80,
            ],
            1280,
            720,
            "avc1.42c01f",
            1,
        ),
        (
            &[
                0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00,
                0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6, 0x58,
            ],
            1920,
            1080,
            "avc1.640028",
            1,
        ),
        (
            &[
                0x67, 0xf4, 0x00, 0x1e, 0x91, 0x9b, 0x28, 0x14, 0x85, 0xfc, 0x7c, 0xf8, 0x08, 0x80,
                0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x1e, 0x07, 0x8b, 0x16, 0xcb,
            ],
            642,
            362,
            "avc1.f4001e",
            3,
        ),
        (
            &[
                0x67, 0x7a, 0x00, 0x0d, 0xbc, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03,
                0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
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
