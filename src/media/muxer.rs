//! [`StreamMuxer`]: one publish's FLV tags in, fMP4 init segment and media segments out.
//!
//! It parses tag bodies, unwraps timestamps onto the session timeline, keeps the codec
//! configs, decides which tracks the stream has, and feeds a [`SegmentCutter`]. Pure logic: the
//! caller stores what comes out ([`MuxEvent`]) and logs what went wrong ([`MediaError`]).
//!
//! Which tracks a stream has is decided at its first video keyframe (video, plus audio if its
//! config came first, as OBS and ffmpeg send it), or after [`AUDIO_ONLY_AFTER_MS`] of audio
//! with no video config (audio only); the init segment is emitted then.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use super::aac::parse_audio_specific_config;
use super::flv::{check_nal_lengths, parse_audio, parse_video, AudioTag, AvcConfig, VideoTag};
use super::fmp4::{AudioTrack, InitSegment, VideoTrack};
use super::mux_event::{AudioInfo, DropReason, MediaError, MuxEvent, VideoInfo};
use super::segmenter::{AudioFrame, AudioOutcome, SegmentCutter, VideoFrame};
use super::sps::{avc_codec_string, parse_sps};
use super::timestamp::TimestampUnwrapper;

/// Audio heard for this long with no video config means an audio-only stream.
pub const AUDIO_ONLY_AFTER_MS: u64 = 1_000;
/// The same when the encoder's metadata announced video: wait longer for it.
pub const AUDIO_ONLY_AFTER_HINTED_MS: u64 = 10_000;
/// Audio kept while waiting for the first keyframe (older frames are dropped).
const MAX_PROBE_AUDIO_MS: u64 = 10_000;
/// The same, by count: timestamps that never advance would keep every frame by time alone
/// (about 21 s of 48 kHz AAC).
pub const MAX_PROBE_AUDIO_FRAMES: usize = 1_000;

/// Where a publish's media goes on its session's timeline: the start for a first publish,
/// after the earlier parts for a publisher that reconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineStart {
    /// Session time (ms) of the publish's first timestamp.
    pub start_ms: u64,
    /// Number of its first segment.
    pub first_sequence: u64,
}

impl Default for TimelineStart {
    fn default() -> TimelineStart {
        TimelineStart {
            start_ms: 0,
            first_sequence: 1,
        }
    }
}

/// Turns one publish's tags into fMP4 (see the module doc).
#[derive(Debug)]
pub struct StreamMuxer {
    target_ms: u64,
    clock: TimestampUnwrapper,
    /// Number of the first segment the cutter will emit.
    first_sequence: u64,
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    /// Set once the init segment is built: the tracks are fixed from then on.
    cutter: Option<SegmentCutter>,
    /// Audio heard before the tracks were decided.
    probe_audio: VecDeque<AudioFrame>,
    /// The encoder's metadata announced video.
    video_announced: bool,
    /// SPS/PPS of a mid-stream config change, sent in-band before the next keyframe.
    inband_parameters: Option<Bytes>,
    /// LL-HLS part target (0: no parts).
    part_ms: u64,
}

impl StreamMuxer {
    /// A muxer cutting segments of about `target_ms` (at keyframes).
    pub fn new(target_ms: u64) -> StreamMuxer {
        StreamMuxer::continuing(target_ms, TimelineStart::default())
    }

    /// A muxer for a publish that continues a session at `start` (a publisher that
    /// reconnected): its timestamps and segment numbers follow the earlier parts'.
    pub fn continuing(target_ms: u64, start: TimelineStart) -> StreamMuxer {
        StreamMuxer {
            target_ms,
            clock: TimestampUnwrapper::starting_at(start.start_ms),
            first_sequence: start.first_sequence,
            video: None,
            audio: None,
            cutter: None,
            probe_audio: VecDeque::new(),
            video_announced: false,
            inband_parameters: None,
            part_ms: 0,
        }
    }

    /// Also cuts LL-HLS parts of about `part_ms` ([`MuxEvent::Part`], each before the
    /// segment it belongs to closes); 0 for none.
    pub fn with_parts(mut self, part_ms: u64) -> StreamMuxer {
        self.part_ms = part_ms;
        self
    }

    /// The number of the segment being built (the next one to come out).
    pub fn next_segment(&self) -> u64 {
        self.cutter
            .as_ref()
            .map_or(self.first_sequence, SegmentCutter::next_sequence)
    }

    /// Notes that the encoder's metadata announced a video track (so audio alone does not
    /// decide an audio-only stream quickly).
    pub fn announce_video(&mut self) {
        self.video_announced = true;
    }

    /// Media bytes held in memory: the segment being filled and the audio waiting for the
    /// tracks to be decided. [`crate::broadcast::publisher_bounds`] keeps it bounded.
    pub fn buffered_bytes(&self) -> usize {
        let probe: usize = self.probe_audio.iter().map(|f| f.data.len()).sum();
        self.cutter.as_ref().map_or(0, SegmentCutter::open_bytes) + probe
    }

    /// Audio frames waiting for the tracks to be decided (at most
    /// [`MAX_PROBE_AUDIO_FRAMES`]).
    pub fn probe_audio_frames(&self) -> usize {
        self.probe_audio.len()
    }

    /// Timestamp resets absorbed so far (for logs).
    pub fn timestamp_resets(&self) -> u64 {
        self.clock.resets()
    }

    /// Handles one FLV video tag body at its RTMP timestamp.
    pub fn push_video(
        &mut self,
        timestamp: u32,
        body: &Bytes,
    ) -> Result<Vec<MuxEvent>, MediaError> {
        match parse_video(body)? {
            VideoTag::AvcSequenceHeader(config) => Ok(self.video_config(config)),
            VideoTag::AvcFrame {
                keyframe,
                composition_ms,
                data,
            } => {
                let Some(track) = &self.video else {
                    return Ok(vec![MuxEvent::Dropped(DropReason::VideoBeforeConfig)]);
                };
                check_nal_lengths(&data, track.config.length_size())?;
                let dts_ms = self.clock.unwrap(timestamp);
                let data = match (keyframe, self.inband_parameters.take()) {
                    (true, Some(params)) => {
                        let mut with = BytesMut::with_capacity(params.len() + data.len());
                        with.extend_from_slice(&params);
                        with.extend_from_slice(&data);
                        with.freeze()
                    }
                    (false, Some(params)) => {
                        self.inband_parameters = Some(params);
                        data
                    }
                    (_, None) => data,
                };
                let frame = VideoFrame {
                    dts_ms,
                    composition_ms,
                    keyframe,
                    data,
                };
                self.video_frame(frame)
            }
            VideoTag::AvcEndOfSequence | VideoTag::Command => Ok(Vec::new()),
        }
    }

    /// Handles one FLV audio tag body at its RTMP timestamp.
    pub fn push_audio(
        &mut self,
        timestamp: u32,
        body: &Bytes,
    ) -> Result<Vec<MuxEvent>, MediaError> {
        match parse_audio(body)? {
            AudioTag::AacSequenceHeader(raw) => {
                let config = parse_audio_specific_config(&raw)?;
                let info = AudioInfo {
                    codec: config.codec_string(),
                    sample_rate: config.sample_rate,
                    channels: config.channels,
                };
                if let Some(cutter) = &self.cutter {
                    if !cutter.has_audio() {
                        return Ok(vec![MuxEvent::Dropped(DropReason::TrackNotInInit)]);
                    }
                }
                if let Some(current) = &self.audio {
                    if current.config == config {
                        return Ok(Vec::new());
                    }
                    if self.cutter.is_some() {
                        return Ok(vec![MuxEvent::Dropped(DropReason::AudioConfigChanged)]);
                    }
                }
                self.audio = Some(AudioTrack { config });
                Ok(vec![MuxEvent::AudioConfig(info)])
            }
            AudioTag::AacFrame(data) => {
                if self.audio.is_none() {
                    return Ok(vec![MuxEvent::Dropped(DropReason::AudioBeforeConfig)]);
                }
                let pts_ms = self.clock.unwrap(timestamp);
                self.audio_frame(AudioFrame { pts_ms, data })
            }
        }
    }

    /// Ends the stream: the last segment (and the init segment, for a stream too short to
    /// have decided its tracks).
    pub fn finish(&mut self) -> Result<Vec<MuxEvent>, MediaError> {
        let mut events = Vec::new();
        if self.cutter.is_none() && self.audio.is_some() && !self.probe_audio.is_empty() {
            if self.video.is_some() {
                // Video config but never a keyframe: nothing decodable to show.
                self.probe_audio.clear();
            } else {
                self.decide_tracks(false, &mut events)?;
            }
        }
        if let Some(cutter) = &mut self.cutter {
            let segment = cutter.finish()?;
            events.extend(cutter.take_parts().into_iter().map(MuxEvent::Part));
            events.extend(segment.map(MuxEvent::Segment));
        }
        Ok(events)
    }

    fn video_config(&mut self, config: AvcConfig) -> Vec<MuxEvent> {
        let (width, height, sps_error) = match config
            .avcc
            .sequence_parameter_sets
            .first()
            .map(|sps| parse_sps(sps))
        {
            Some(Ok(sps)) => (Some(sps.width), Some(sps.height), None),
            Some(Err(e)) => (None, None, Some(e)),
            None => (None, None, None),
        };
        let info = VideoInfo {
            codec: avc_codec_string(
                config.avcc.avc_profile_indication,
                config.avcc.profile_compatibility,
                config.avcc.avc_level_indication,
            ),
            width,
            height,
            sps_error,
        };
        let track = VideoTrack {
            width: width.and_then(|w| u16::try_from(w).ok()).unwrap_or(0),
            height: height.and_then(|h| u16::try_from(h).ok()).unwrap_or(0),
            config,
        };
        if let Some(cutter) = &self.cutter {
            if !cutter.has_video() {
                return vec![MuxEvent::Dropped(DropReason::TrackNotInInit)];
            }
        }
        if let Some(current) = &self.video {
            if current.config.avcc == track.config.avcc {
                return Vec::new();
            }
            if self.cutter.is_some() {
                // The init segment is written: carry the new parameter sets in-band, before
                // the next keyframe (decoders take them there; the sample entry keeps the old).
                if current.config.length_size() != track.config.length_size() {
                    return vec![MuxEvent::Dropped(DropReason::VideoConfigIncompatible)];
                }
                self.inband_parameters = Some(inband_parameter_sets(&track.config));
            }
        }
        self.video = Some(track);
        vec![MuxEvent::VideoConfig(info)]
    }

    fn video_frame(&mut self, frame: VideoFrame) -> Result<Vec<MuxEvent>, MediaError> {
        let mut events = Vec::new();
        if self.cutter.is_none() {
            if !frame.keyframe {
                return Ok(vec![MuxEvent::Dropped(DropReason::VideoBeforeKeyframe)]);
            }
            let first_dts = frame.dts_ms;
            self.decide_tracks(true, &mut events)?;
            if let Some(cutter) = &mut self.cutter {
                cutter.push_video(frame)?;
                events.extend(cutter.take_parts().into_iter().map(MuxEvent::Part));
            }
            let mut dropped_audio = false;
            while let Some(audio) = self.probe_audio.pop_front() {
                if audio.pts_ms < first_dts {
                    dropped_audio = true;
                    continue;
                }
                self.queue_audio(audio, &mut events)?;
            }
            if dropped_audio {
                events.push(MuxEvent::Dropped(DropReason::AudioBeforeVideo));
            }
            return Ok(events);
        }
        let Some(cutter) = &mut self.cutter else {
            return Ok(events);
        };
        if !cutter.has_video() {
            return Ok(vec![MuxEvent::Dropped(DropReason::TrackNotInInit)]);
        }
        let segment = cutter.push_video(frame)?;
        events.extend(cutter.take_parts().into_iter().map(MuxEvent::Part));
        events.extend(segment.map(MuxEvent::Segment));
        Ok(events)
    }

    fn audio_frame(&mut self, frame: AudioFrame) -> Result<Vec<MuxEvent>, MediaError> {
        let mut events = Vec::new();
        if self.cutter.is_some() {
            self.queue_audio(frame, &mut events)?;
            return Ok(events);
        }
        let pts = frame.pts_ms;
        self.probe_audio.push_back(frame);
        let first = self.probe_audio.front().map(|f| f.pts_ms).unwrap_or(pts);
        let wait = if self.video_announced {
            AUDIO_ONLY_AFTER_HINTED_MS
        } else {
            AUDIO_ONLY_AFTER_MS
        };
        if self.video.is_none() && pts.saturating_sub(first) >= wait {
            self.decide_tracks(false, &mut events)?;
            while let Some(audio) = self.probe_audio.pop_front() {
                self.queue_audio(audio, &mut events)?;
            }
        } else {
            while self.probe_audio.len() > MAX_PROBE_AUDIO_FRAMES
                || self
                    .probe_audio
                    .front()
                    .is_some_and(|f| pts.saturating_sub(f.pts_ms) > MAX_PROBE_AUDIO_MS)
            {
                self.probe_audio.pop_front();
            }
        }
        Ok(events)
    }

    /// Feeds audio to the cutter once the tracks are decided.
    fn queue_audio(
        &mut self,
        frame: AudioFrame,
        events: &mut Vec<MuxEvent>,
    ) -> Result<(), MediaError> {
        let Some(cutter) = &mut self.cutter else {
            return Ok(());
        };
        match cutter.push_audio(frame)? {
            (AudioOutcome::Queued, segment) => events.extend(segment.map(MuxEvent::Segment)),
            (AudioOutcome::NoOpenSegment, _) => {
                events.push(MuxEvent::Dropped(DropReason::TrackNotInInit))
            }
            (AudioOutcome::Early, _) => events.push(MuxEvent::Dropped(DropReason::AudioEarly)),
        }
        Ok(())
    }

    /// Fixes the tracks and builds the init segment and the cutter.
    fn decide_tracks(
        &mut self,
        with_video: bool,
        events: &mut Vec<MuxEvent>,
    ) -> Result<(), MediaError> {
        let video = if with_video {
            self.video.as_ref()
        } else {
            None
        };
        let audio = self.audio.as_ref();
        let init = InitSegment::build(video, audio)?;
        self.cutter = Some(
            SegmentCutter::new(
                self.target_ms,
                video.is_some(),
                audio.map(|a| a.config.sample_rate),
            )
            .with_first_sequence(self.first_sequence)
            .with_parts(self.part_ms),
        );
        events.push(MuxEvent::Init(init));
        Ok(())
    }
}

/// A config's SPS and PPS as length-prefixed NAL units, to prepend to a keyframe.
fn inband_parameter_sets(config: &AvcConfig) -> Bytes {
    let size = usize::from(config.length_size());
    let mut out = BytesMut::new();
    let avcc = &config.avcc;
    for nal in avcc
        .sequence_parameter_sets
        .iter()
        .chain(&avcc.picture_parameter_sets)
    {
        let len = nal.len() as u64;
        for i in (0..size).rev() {
            out.put_u8((len >> (8 * i)) as u8);
        }
        out.extend_from_slice(nal);
    }
    out.freeze()
}
