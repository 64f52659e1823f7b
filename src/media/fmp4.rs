//! Fragmented MP4 (CMAF-style) as HLS plays it: one init segment (`ftyp` + `moov` describing
//! the tracks) and media fragments (`moof` + `mdat`), built as mp4-atom typed boxes.
//!
//! Track 1 is H.264 video on a 90 kHz clock; track 2 is AAC audio on a clock of its sample rate.
//! Sample timing comes from the caller ([`TrackFragment`]); this module only lays boxes out and
//! computes the one offset the crate leaves to us (`trun.data_offset`).

use bytes::{BufMut, Bytes, BytesMut};
use mp4_atom::{
    esds, Audio, Avc1, Codec, Dinf, Dref, Encode, FixedPoint, Ftyp, Hdlr, Mdhd, Mdia, Mfhd, Minf,
    Moof, Moov, Mp4a, Mvex, Mvhd, Smhd, Stbl, Stco, Stsd, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun,
    TrunEntry, TrunSamples, Url, Visual, Vmhd,
};

use super::aac::AacConfig;
use super::flv::AvcConfig;

/// Track id of the video track in every init segment and fragment.
pub const VIDEO_TRACK_ID: u32 = 1;
/// Track id of the audio track.
pub const AUDIO_TRACK_ID: u32 = 2;
/// Video timescale: 90 kHz, so ms timestamps convert exactly (x 90).
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Samples in one AAC frame: the duration of every audio sample in its timescale.
pub const AAC_FRAME_SAMPLES: u32 = 1024;

/// Sample flags of a sync sample (keyframe, or any audio frame): depends on no other sample.
pub const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// Sample flags of a non-sync video sample: depends on others, `sample_is_non_sync_sample`.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// A box could not be encoded (a value out of the range the format allows).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {what}: {source}")]
pub struct Fmp4Error {
    pub(super) what: &'static str,
    pub(super) source: mp4_atom::Error,
}

/// The video track as the init segment describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoTrack {
    pub config: AvcConfig,
    /// Displayed size from the SPS (0 when unknown; decoders read the SPS anyway).
    pub width: u16,
    pub height: u16,
}

/// The audio track as the init segment describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioTrack {
    pub config: AacConfig,
}

/// An encoded init segment (`init.mp4`): what a player loads before any fragment.
#[derive(Debug, Clone, PartialEq)]
pub struct InitSegment {
    pub bytes: Bytes,
    pub has_video: bool,
    pub has_audio: bool,
}

impl InitSegment {
    /// Builds `ftyp` + `moov` (with `mvex`/`trex`) for the tracks present.
    pub fn build(
        video: Option<&VideoTrack>,
        audio: Option<&AudioTrack>,
    ) -> Result<InitSegment, Fmp4Error> {
        let ftyp = Ftyp {
            major_brand: b"iso6".into(),
            minor_version: 0,
            compatible_brands: vec![b"iso6".into(), b"cmfc".into(), b"mp41".into()],
        };
        let mut trak = Vec::new();
        let mut trex = Vec::new();
        if let Some(v) = video {
            trak.push(video_trak(v));
            trex.push(trex_for(VIDEO_TRACK_ID));
        }
        if let Some(a) = audio {
            trak.push(audio_trak(a));
            trex.push(trex_for(AUDIO_TRACK_ID));
        }
        let moov = Moov {
            mvhd: Mvhd {
                timescale: 1000,
                rate: FixedPoint::new(1, 0),
                volume: FixedPoint::new(1, 0),
                next_track_id: AUDIO_TRACK_ID + 1,
                ..Default::default()
            },
            mvex: Some(Mvex { mehd: None, trex }),
            trak,
            ..Default::default()
        };
        let mut out = Vec::with_capacity(1024);
        ftyp.encode(&mut out).map_err(|source| Fmp4Error {
            what: "ftyp",
            source,
        })?;
        moov.encode(&mut out).map_err(|source| Fmp4Error {
            what: "moov",
            source,
        })?;
        Ok(InitSegment {
            bytes: Bytes::from(out),
            has_video: video.is_some(),
            has_audio: audio.is_some(),
        })
    }
}

fn trex_for(track_id: u32) -> Trex {
    Trex {
        track_id,
        default_sample_description_index: 1,
        ..Default::default()
    }
}

fn minf_with(stsd_codec: Codec) -> Minf {
    Minf {
        dinf: Dinf {
            dref: Dref {
                entries: vec![Url::default().into()],
            },
        },
        stbl: Stbl {
            stsd: Stsd {
                codecs: vec![stsd_codec],
            },
            stco: Some(Stco::default()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn video_trak(v: &VideoTrack) -> Trak {
    let avc1 = Avc1 {
        visual: Visual {
            data_reference_index: 1,
            width: v.width,
            height: v.height,
            ..Default::default()
        },
        avcc: v.config.avcc.clone(),
        ..Default::default()
    };
    let mut minf = minf_with(Codec::Avc1(avc1));
    minf.vmhd = Some(Vmhd::default());
    Trak {
        tkhd: Tkhd {
            track_id: VIDEO_TRACK_ID,
            enabled: true,
            in_movie: true,
            width: FixedPoint::new(v.width, 0),
            height: FixedPoint::new(v.height, 0),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: VIDEO_TIMESCALE,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"vide".into(),
                name: "barrage video".into(),
            },
            minf,
        },
        ..Default::default()
    }
}

fn audio_trak(a: &AudioTrack) -> Trak {
    let c = &a.config;
    let (profile, freq_index, chan_conf) = asc_prefix(&c.raw);
    let mp4a = Mp4a {
        audio: Audio {
            data_reference_index: 1,
            channel_count: u16::from(if c.channels == 0 { 2 } else { c.channels }),
            sample_size: 16,
            // The config parser refuses rates above 65535, so this fits.
            sample_rate: FixedPoint::new(u16::try_from(c.sample_rate).unwrap_or(0), 0),
        },
        esds: mp4_atom::Esds {
            es_desc: esds::EsDescriptor {
                es_id: AUDIO_TRACK_ID as u16,
                dec_config: esds::DecoderConfig {
                    object_type_indication: 0x40,
                    stream_type: 5,
                    dec_specific: Some(esds::DecoderSpecific {
                        profile,
                        freq_index,
                        chan_conf,
                        raw: c.raw.clone(),
                    }),
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        btrt: None,
        taic: None,
    };
    let mut minf = minf_with(Codec::Mp4a(mp4a));
    minf.smhd = Some(Smhd::default());
    Trak {
        tkhd: Tkhd {
            track_id: AUDIO_TRACK_ID,
            enabled: true,
            in_movie: true,
            alternate_group: 1,
            volume: FixedPoint::new(1, 0),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: c.sample_rate,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"soun".into(),
                name: "barrage audio".into(),
            },
            minf,
        },
        ..Default::default()
    }
}

/// The leading fields of an AudioSpecificConfig, for the typed `DecoderSpecific` (the raw bytes
/// are what gets written).
fn asc_prefix(raw: &[u8]) -> (u8, u8, u8) {
    match raw {
        [a, b, ..] => (a >> 3, ((a & 7) << 1) | (b >> 7), (b >> 3) & 0x0f),
        _ => (0, 0, 0),
    }
}

/// One sample of a fragment, with its timing already in the track's timescale.
#[derive(Debug, Clone, PartialEq)]
pub struct FragmentSample {
    pub duration: u32,
    /// Composition offset (presentation minus decode time).
    pub cts: i32,
    pub sync: bool,
    pub data: Bytes,
}

/// One track's part of a fragment: a `traf` and its samples' bytes in the `mdat`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackFragment {
    pub track_id: u32,
    /// Decode time of the first sample (`tfdt`), in the track's timescale.
    pub base_decode_time: u64,
    pub samples: Vec<FragmentSample>,
}

/// Encodes a media fragment: one `moof` (a `traf` per non-empty track) and one `mdat` holding
/// the tracks' sample data in the same order.
pub fn encode_fragment(sequence: u32, tracks: &[TrackFragment]) -> Result<Bytes, Fmp4Error> {
    let tracks: Vec<&TrackFragment> = tracks.iter().filter(|t| !t.samples.is_empty()).collect();
    let mut traf: Vec<Traf> = tracks
        .iter()
        .map(|t| Traf {
            tfhd: Tfhd {
                track_id: t.track_id,
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: t.base_decode_time,
            }),
            trun: vec![Trun {
                // Placeholder of the final width; set below once the moof size is known.
                data_offset: Some(0),
                samples: TrunSamples::Explicit(
                    t.samples
                        .iter()
                        .map(|s| TrunEntry {
                            duration: Some(s.duration),
                            size: Some(s.data.len() as u32),
                            flags: Some(if s.sync {
                                SYNC_SAMPLE_FLAGS
                            } else {
                                NON_SYNC_SAMPLE_FLAGS
                            }),
                            cts: Some(i64::from(s.cts)),
                        })
                        .collect(),
                ),
            }],
            ..Default::default()
        })
        .collect();

    let encode_moof = |traf: Vec<Traf>| -> Result<Vec<u8>, Fmp4Error> {
        let moof = Moof {
            mfhd: Mfhd {
                sequence_number: sequence,
            },
            traf,
        };
        let mut out = Vec::new();
        moof.encode(&mut out).map_err(|source| Fmp4Error {
            what: "moof",
            source,
        })?;
        Ok(out)
    };
    // The offsets do not change the moof's size (a fixed 32-bit field), so measure once.
    let moof_size = encode_moof(traf.clone())?.len();
    let mut offset = moof_size + 8;
    let mut mdat_len = 0usize;
    for (t, src) in traf.iter_mut().zip(&tracks) {
        let data_offset = i32::try_from(offset).map_err(|_| Fmp4Error {
            what: "trun data offset",
            source: mp4_atom::Error::OutOfBounds,
        })?;
        if let Some(run) = t.trun.first_mut() {
            run.data_offset = Some(data_offset);
        }
        let len: usize = src.samples.iter().map(|s| s.data.len()).sum();
        offset += len;
        mdat_len += len;
    }
    let moof = encode_moof(traf)?;
    let mdat_size = u32::try_from(mdat_len + 8).map_err(|_| Fmp4Error {
        what: "mdat larger than 4 GiB",
        source: mp4_atom::Error::OutOfBounds,
    })?;
    // The mdat header is written by hand so the sample data is copied once, straight in.
    let mut out = BytesMut::with_capacity(moof.len() + 8 + mdat_len);
    out.extend_from_slice(&moof);
    out.put_u32(mdat_size);
    out.extend_from_slice(b"mdat");
    for t in &tracks {
        for s in &t.samples {
            out.extend_from_slice(&s.data);
        }
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests;
