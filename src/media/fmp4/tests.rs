//! Init segment and fragment layout, read back with mp4-atom.

use super::*;
use mp4_atom::{Any, Decode};

fn video_track() -> VideoTrack {
    let mut record = vec![1, 0x64, 0x00, 0x0d, 0xff, 0xe1];
    let sps = crate::media::sps::tests::FFMPEG_320X180;
    record.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    record.extend_from_slice(sps);
    record.extend_from_slice(&[1, 0, 4, 0x68, 0xeb, 0xe3, 0xcb]);
    VideoTrack {
        config: AvcConfig::parse(Bytes::from(record)).unwrap(),
        width: 320,
        height: 180,
    }
}

fn audio_track() -> AudioTrack {
    AudioTrack {
        config: crate::media::aac::parse_audio_specific_config(&[0x11, 0x90]).unwrap(),
    }
}

#[test]
fn init_segment_round_trips() {
    let init = InitSegment::build(Some(&video_track()), Some(&audio_track())).unwrap();
    let mut buf: &[u8] = &init.bytes;
    let Any::Ftyp(ftyp) = Any::decode(&mut buf).unwrap() else {
        panic!("no ftyp")
    };
    assert_eq!(ftyp.major_brand, b"iso6".into());
    let Any::Moov(moov) = Any::decode(&mut buf).unwrap() else {
        panic!("no moov")
    };
    assert!(buf.is_empty());
    assert_eq!(moov.trak.len(), 2);
    assert_eq!(moov.mvex.as_ref().unwrap().trex.len(), 2);
    let v = &moov.trak[0];
    assert_eq!(v.tkhd.track_id, VIDEO_TRACK_ID);
    assert_eq!(v.mdia.mdhd.timescale, 90_000);
    let Codec::Avc1(avc1) = &v.mdia.minf.stbl.stsd.codecs[0] else {
        panic!("no avc1")
    };
    assert_eq!(avc1.visual.data_reference_index, 1);
    assert_eq!((avc1.visual.width, avc1.visual.height), (320, 180));
    assert_eq!(avc1.avcc, video_track().config.avcc);
    let a = &moov.trak[1];
    assert_eq!(a.mdia.mdhd.timescale, 48_000);
    let Codec::Mp4a(mp4a) = &a.mdia.minf.stbl.stsd.codecs[0] else {
        panic!("no mp4a")
    };
    let dec = &mp4a.esds.es_desc.dec_config;
    assert_eq!(dec.object_type_indication, 0x40);
    assert_eq!(dec.dec_specific.as_ref().unwrap().raw, vec![0x11, 0x90]);
    assert_eq!(mp4a.audio.channel_count, 2);

    let audio_only = InitSegment::build(None, Some(&audio_track())).unwrap();
    assert!(!audio_only.has_video && audio_only.has_audio);
}

#[test]
fn fragment_offsets_point_at_each_tracks_data() {
    let sample = |d: &'static [u8], sync| FragmentSample {
        duration: 3000,
        cts: 6000,
        sync,
        data: Bytes::from_static(d),
    };
    let tracks = vec![
        TrackFragment {
            track_id: VIDEO_TRACK_ID,
            base_decode_time: 180_000,
            samples: vec![sample(b"KEY!", true), sample(b"p", false)],
        },
        TrackFragment {
            track_id: AUDIO_TRACK_ID,
            base_decode_time: 96_000,
            samples: vec![sample(b"aac", true)],
        },
        TrackFragment {
            track_id: 9,
            base_decode_time: 0,
            samples: vec![],
        },
    ];
    let bytes = encode_fragment(7, &tracks).unwrap();
    let mut buf: &[u8] = &bytes;
    let moof = Moof::decode(&mut buf).unwrap();
    let moof_len = bytes.len() - buf.len();
    assert_eq!(moof.mfhd.sequence_number, 7);
    assert_eq!(moof.traf.len(), 2);
    assert_eq!(&buf[4..8], b"mdat");
    assert_eq!(&buf[8..], b"KEY!paac");
    let v = &moof.traf[0];
    assert_eq!(v.tfdt.as_ref().unwrap().base_media_decode_time, 180_000);
    let off = v.trun[0].data_offset.unwrap() as usize;
    assert_eq!(off, moof_len + 8);
    assert_eq!(&bytes[off..off + 4], b"KEY!");
    let entries: Vec<TrunEntry> = v.trun[0].samples.iter().collect();
    assert_eq!(entries[0].flags, Some(SYNC_SAMPLE_FLAGS));
    assert_eq!(entries[1].flags, Some(NON_SYNC_SAMPLE_FLAGS));
    assert_eq!(entries[1].cts, Some(6000));
    let a = &moof.traf[1];
    let off = a.trun[0].data_offset.unwrap() as usize;
    assert_eq!(&bytes[off..off + 3], b"aac");
}
