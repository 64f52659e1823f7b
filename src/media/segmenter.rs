//! [`SegmentCutter`]: groups timed frames into HLS media segments, each one fMP4 fragment.
//!
//! With video, a segment starts at a keyframe and is cut at the first keyframe at least
//! `target` after its start, so a segment never splits a GOP (the one exception: a GOP longer
//! than [`SegmentCutter::max_segment_ms`] is cut anyway, so memory and playlist latency stay
//! bounded, and the next segment is marked not independent). Audio-only streams are cut by time.
//! A sample's duration is only known when the next one arrives, so a segment is emitted when
//! its closing keyframe arrives, and the last one on [`SegmentCutter::finish`].

use bytes::Bytes;

use super::fmp4::{
    encode_fragment, Fmp4Error, FragmentSample, TrackFragment, AAC_FRAME_SAMPLES, AUDIO_TRACK_ID,
    VIDEO_TIMESCALE, VIDEO_TRACK_ID,
};
use super::part_planner::{PartCut, PartPlanner};

/// A video access unit on the session timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoFrame {
    /// Decode time, ms since the session start.
    pub dts_ms: u64,
    /// Presentation minus decode time, ms.
    pub composition_ms: i32,
    pub keyframe: bool,
    /// AVCC NAL units.
    pub data: Bytes,
}

/// An AAC frame on the session timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioFrame {
    /// Timestamp, ms since the session start.
    pub pts_ms: u64,
    pub data: Bytes,
}

/// An encoded media segment (`moof` + `mdat`), ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// 1 for the session's first segment; names the object (`000001.m4s`).
    pub sequence: u64,
    /// Start on the session timeline (the first keyframe's decode time), ms.
    pub start_ms: u64,
    /// Seconds until the next segment's start (or the end of the last sample).
    pub duration: f64,
    pub bytes: Bytes,
    /// Starts with a keyframe (or is audio only): decodable without the previous segment.
    pub independent: bool,
    pub video_frames: usize,
    pub audio_frames: usize,
}

/// An LL-HLS partial segment: a run of the segment being built, encoded as its own fragment
/// (`moof` + `mdat`) from the same samples, with the same decode times. The segment itself is
/// still encoded whole when it closes; its parts, in order, hold exactly its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The segment it belongs to ([`Segment::sequence`]).
    pub segment: u64,
    /// 0 for a segment's first part.
    pub index: u32,
    /// Start on the session timeline, ms.
    pub start_ms: u64,
    pub duration: f64,
    /// Starts with a keyframe (`INDEPENDENT=YES`).
    pub independent: bool,
    pub bytes: Bytes,
}

/// What happened to an audio frame handed to the cutter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioOutcome {
    Queued,
    /// The stream has video and no segment has started yet (no keyframe so far).
    NoOpenSegment,
    /// Its timestamp is well behind the frames already counted: the audio clock ran ahead.
    Early,
}

/// How far the sample-counting audio clock may drift from the timestamps before it resyncs.
const AUDIO_RESYNC_MS: u64 = 100;

/// Video sample as buffered: decode time in 90 kHz units.
#[derive(Debug)]
struct BufferedVideo {
    dts: u64,
    cts: i32,
    sync: bool,
    data: Bytes,
}

/// Audio sample as buffered: decode time in samples.
#[derive(Debug)]
struct BufferedAudio {
    decode: u64,
    data: Bytes,
}

/// The segment being filled.
#[derive(Debug)]
struct OpenSegment {
    start_ms: u64,
    independent: bool,
    video: Vec<BufferedVideo>,
    audio: Vec<BufferedAudio>,
    /// Sample bytes buffered (what a publisher's frozen timestamps would grow without bound).
    bytes: usize,
    /// Where the open LL-HLS part starts in `video` and `audio`.
    part_video_from: usize,
    part_audio_from: usize,
}

/// Cuts frames into segments; pure (no I/O, no clock).
#[derive(Debug)]
pub struct SegmentCutter {
    target_ms: u64,
    max_ms: u64,
    has_video: bool,
    /// Audio sample rate (the audio timescale), when the stream has audio.
    audio_rate: Option<u32>,
    next_sequence: u64,
    open: Option<OpenSegment>,
    /// Decode time (90 kHz) of the newest video sample, to keep DTS strictly increasing.
    last_video_dts: Option<u64>,
    /// The most recent video sample duration, reused for the very last sample.
    last_video_duration: u32,
    /// Decode time (samples) the next AAC frame gets when it arrives on time.
    next_audio_decode: Option<u64>,
    /// LL-HLS parts (None: off, or an audio-only stream).
    planner: Option<PartPlanner>,
    /// Parts closed and not yet taken ([`SegmentCutter::take_parts`]).
    ready_parts: Vec<Part>,
    /// `mfhd` sequence number of the next part.
    next_part_fragment: u32,
}

impl SegmentCutter {
    /// A cutter for a stream with video and/or audio (`audio_rate` = AAC sample rate).
    pub fn new(target_ms: u64, has_video: bool, audio_rate: Option<u32>) -> SegmentCutter {
        let target_ms = target_ms.max(1);
        SegmentCutter {
            target_ms,
            max_ms: (target_ms * 10).max(30_000),
            has_video,
            audio_rate: audio_rate.filter(|r| *r > 0),
            next_sequence: 1,
            open: None,
            last_video_dts: None,
            last_video_duration: VIDEO_TIMESCALE / 30,
            next_audio_decode: None,
            planner: None,
            ready_parts: Vec::new(),
            next_part_fragment: 1,
        }
    }

    /// Also cuts LL-HLS parts of about `part_ms` (0: none). Parts follow video frames, so an
    /// audio-only stream gets none.
    pub fn with_parts(mut self, part_ms: u64) -> SegmentCutter {
        self.planner = (part_ms > 0 && self.has_video).then(|| PartPlanner::new(part_ms));
        self
    }

    /// The parts closed since the last call, in order (a segment's last part comes out with
    /// the segment, before it is returned).
    pub fn take_parts(&mut self) -> Vec<Part> {
        std::mem::take(&mut self.ready_parts)
    }

    /// Numbers the first segment `n` instead of 1: a reconnected publisher's segments continue
    /// the session's numbering (and its object names).
    pub fn with_first_sequence(mut self, n: u64) -> SegmentCutter {
        self.next_sequence = n.max(1);
        self
    }

    /// The number the next segment out will have (the one being filled).
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// Longest a segment may grow while waiting for a keyframe.
    pub fn max_segment_ms(&self) -> u64 {
        self.max_ms
    }

    /// Whether the segments carry a video track.
    pub fn has_video(&self) -> bool {
        self.has_video
    }

    /// Whether the segments carry an audio track.
    pub fn has_audio(&self) -> bool {
        self.audio_rate.is_some()
    }

    /// Sample bytes held in the segment being filled.
    pub fn open_bytes(&self) -> usize {
        self.open.as_ref().map_or(0, |o| o.bytes)
    }

    /// Whether a segment has started (with video: the first keyframe has arrived).
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Adds a video frame; returns the segment it closes, if any. Frames before the first
    /// keyframe are refused (`Ok(None)` and not queued: check [`Self::is_open`] first).
    pub fn push_video(&mut self, frame: VideoFrame) -> Result<Option<Segment>, Fmp4Error> {
        if !self.has_video {
            return Ok(None);
        }
        let mut dts = frame.dts_ms.saturating_mul(90);
        if let Some(last) = self.last_video_dts {
            // Strictly increasing decode times: a repeated or reordered DTS moves one tick on.
            dts = dts.max(last + 1);
        }
        let dts_ms = dts / 90;
        let mut closed = None;
        match &self.open {
            None if !frame.keyframe => return Ok(None),
            None => self.open = Some(OpenSegment::new(dts_ms, true)),
            Some(open) => {
                let age = dts_ms.saturating_sub(open.start_ms);
                if (frame.keyframe && age >= self.target_ms) || age >= self.max_ms {
                    closed = self.close(CloseAt::VideoFrame(dts))?;
                    self.open = Some(OpenSegment::new(dts_ms, frame.keyframe));
                }
            }
        }
        if let Some(cut) = self
            .planner
            .as_mut()
            .and_then(|p| p.frame(dts_ms, frame.keyframe))
        {
            self.close_part(cut, dts)?;
        }
        if let Some(last) = self.last_video_dts {
            self.last_video_duration = u32::try_from(dts - last).unwrap_or(u32::MAX);
        }
        self.last_video_dts = Some(dts);
        if let Some(open) = &mut self.open {
            open.bytes += frame.data.len();
            open.video.push(BufferedVideo {
                dts,
                cts: frame.composition_ms.saturating_mul(90),
                sync: frame.keyframe,
                data: frame.data,
            });
        }
        Ok(closed)
    }

    /// Adds an AAC frame; returns the segment it closes (audio-only streams), if any.
    pub fn push_audio(
        &mut self,
        frame: AudioFrame,
    ) -> Result<(AudioOutcome, Option<Segment>), Fmp4Error> {
        let Some(rate) = self.audio_rate else {
            return Ok((AudioOutcome::NoOpenSegment, None));
        };
        if self.has_video && self.open.is_none() {
            return Ok((AudioOutcome::NoOpenSegment, None));
        }
        let rate64 = u64::from(rate);
        let stamped = frame.pts_ms.saturating_mul(rate64) / 1000;
        let tolerance = AUDIO_RESYNC_MS * rate64 / 1000;
        let decode = match self.next_audio_decode {
            None => stamped,
            Some(next) if stamped > next + tolerance => stamped,
            Some(next) if stamped + tolerance < next => {
                return Ok((AudioOutcome::Early, None));
            }
            Some(next) => next,
        };
        self.next_audio_decode = Some(decode + u64::from(AAC_FRAME_SAMPLES));
        let decode_ms = decode * 1000 / rate64;
        let mut closed = None;
        if !self.has_video {
            match &self.open {
                None => self.open = Some(OpenSegment::new(decode_ms, true)),
                Some(open) if decode_ms.saturating_sub(open.start_ms) >= self.target_ms => {
                    closed = self.close(CloseAt::AudioFrame(decode))?;
                    self.open = Some(OpenSegment::new(decode_ms, true));
                }
                Some(_) => {}
            }
        }
        if let Some(open) = &mut self.open {
            open.bytes += frame.data.len();
            open.audio.push(BufferedAudio {
                decode,
                data: frame.data,
            });
        }
        Ok((AudioOutcome::Queued, closed))
    }

    /// Closes the last segment at the end of the stream.
    pub fn finish(&mut self) -> Result<Option<Segment>, Fmp4Error> {
        self.close(CloseAt::End)
    }

    /// Encodes the open segment, whose end is given by what closes it.
    fn close(&mut self, at: CloseAt) -> Result<Option<Segment>, Fmp4Error> {
        if let Some(planner) = &mut self.planner {
            let end_dts = match at {
                CloseAt::VideoFrame(dts) => Some(dts),
                _ => self.open.as_ref().and_then(|o| {
                    o.video
                        .last()
                        .map(|v| v.dts + u64::from(self.last_video_duration))
                }),
            };
            if let Some(end_dts) = end_dts {
                if let Some(cut) = planner.segment_ended(end_dts / 90) {
                    self.close_part(cut, end_dts)?;
                }
            }
        }
        let Some(open) = self.open.take() else {
            return Ok(None);
        };
        if open.video.is_empty() && open.audio.is_empty() {
            return Ok(None);
        }
        let mut tracks = Vec::with_capacity(2);
        let mut end_ms = open.start_ms;
        if let (Some(first), Some(last)) = (open.video.first(), open.video.last()) {
            let end = match at {
                CloseAt::VideoFrame(dts) => dts,
                _ => last.dts + u64::from(self.last_video_duration),
            };
            end_ms = end_ms.max(end / 90);
            if matches!(at, CloseAt::End) {
                end_ms = end_ms.max(self.shown_until(&open.video).div_ceil(90));
            }
            tracks.push(TrackFragment {
                track_id: VIDEO_TRACK_ID,
                base_decode_time: first.dts,
                samples: timed_samples(
                    &open.video,
                    |v| v.dts,
                    end,
                    |v| (v.cts, v.sync, v.data.clone()),
                ),
            });
        }
        if let (Some(first), Some(last), Some(rate)) =
            (open.audio.first(), open.audio.last(), self.audio_rate)
        {
            let end = match at {
                CloseAt::AudioFrame(decode) => decode,
                _ => last.decode + u64::from(AAC_FRAME_SAMPLES),
            };
            end_ms = end_ms.max(end * 1000 / u64::from(rate));
            tracks.push(TrackFragment {
                track_id: AUDIO_TRACK_ID,
                base_decode_time: first.decode,
                samples: timed_samples(
                    &open.audio,
                    |a| a.decode,
                    end,
                    |a| (0, true, a.data.clone()),
                ),
            });
        }
        // A cut segment lasts until the next one starts; the last one until its last sample ends.
        match at {
            CloseAt::VideoFrame(dts) => end_ms = dts / 90,
            CloseAt::AudioFrame(decode) => {
                if let Some(rate) = self.audio_rate {
                    end_ms = decode * 1000 / u64::from(rate);
                }
            }
            CloseAt::End => {}
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let bytes = encode_fragment(u32::try_from(sequence).unwrap_or(u32::MAX), &tracks)?;
        Ok(Some(Segment {
            sequence,
            start_ms: open.start_ms,
            duration: end_ms.saturating_sub(open.start_ms) as f64 / 1000.0,
            bytes,
            independent: open.independent,
            video_frames: open.video.len(),
            audio_frames: open.audio.len(),
        }))
    }
}

impl SegmentCutter {
    /// Encodes the open segment's samples since the last part as part `cut`: video up to
    /// `video_end` (90 kHz; the decode time of the frame that starts the next part), and the
    /// audio queued so far (each AAC frame lasts 1024 samples).
    fn close_part(&mut self, cut: PartCut, video_end: u64) -> Result<(), Fmp4Error> {
        let Some(open) = &mut self.open else {
            return Ok(());
        };
        let video = &open.video[open.part_video_from.min(open.video.len())..];
        let audio = &open.audio[open.part_audio_from.min(open.audio.len())..];
        if video.is_empty() && audio.is_empty() {
            return Ok(());
        }
        let mut tracks = Vec::with_capacity(2);
        if let Some(first) = video.first() {
            tracks.push(TrackFragment {
                track_id: VIDEO_TRACK_ID,
                base_decode_time: first.dts,
                samples: timed_samples(
                    video,
                    |v| v.dts,
                    video_end,
                    |v| (v.cts, v.sync, v.data.clone()),
                ),
            });
        }
        if let (Some(first), Some(last)) = (audio.first(), audio.last()) {
            tracks.push(TrackFragment {
                track_id: AUDIO_TRACK_ID,
                base_decode_time: first.decode,
                samples: timed_samples(
                    audio,
                    |a| a.decode,
                    last.decode + u64::from(AAC_FRAME_SAMPLES),
                    |a| (0, true, a.data.clone()),
                ),
            });
        }
        open.part_video_from = open.video.len();
        open.part_audio_from = open.audio.len();
        let bytes = encode_fragment(self.next_part_fragment, &tracks)?;
        self.next_part_fragment = self.next_part_fragment.wrapping_add(1);
        self.ready_parts.push(Part {
            segment: self.next_sequence,
            index: cut.index,
            start_ms: cut.start_ms,
            duration: cut.duration_s(),
            independent: cut.independent,
            bytes,
        });
        Ok(())
    }

    /// When the last of `frames` has been shown (90 kHz): with B-frames a picture is shown
    /// after it is decoded, so the stream's presentation ends a composition offset after its
    /// decoding. The last segment of a publish is listed until then, or a player placing the
    /// pictures by their presentation time would find them past the playlist's end (hls.js
    /// then fails to set the media duration when the playlist ends).
    fn shown_until(&self, frames: &[BufferedVideo]) -> u64 {
        frames
            .iter()
            .map(|v| v.dts.saturating_add_signed(i64::from(v.cts)))
            .max()
            .unwrap_or(0)
            + u64::from(self.last_video_duration)
    }
}

/// What ends a segment: the frame that starts the next one (its decode time), or the stream.
#[derive(Debug, Clone, Copy)]
enum CloseAt {
    /// A video frame at this decode time (90 kHz).
    VideoFrame(u64),
    /// An audio frame at this decode time (samples); audio-only streams.
    AudioFrame(u64),
    End,
}

impl OpenSegment {
    fn new(start_ms: u64, independent: bool) -> OpenSegment {
        OpenSegment {
            start_ms,
            independent,
            video: Vec::new(),
            audio: Vec::new(),
            bytes: 0,
            part_video_from: 0,
            part_audio_from: 0,
        }
    }
}

/// Fragment samples whose durations are the gaps between decode times (the last one lasts
/// until `end`, at least one tick).
fn timed_samples<T>(
    items: &[T],
    decode: impl Fn(&T) -> u64,
    end: u64,
    fields: impl Fn(&T) -> (i32, bool, Bytes),
) -> Vec<FragmentSample> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let next = items.get(i + 1).map(&decode).unwrap_or(end);
            let duration = next.saturating_sub(decode(item)).max(1);
            let (cts, sync, data) = fields(item);
            FragmentSample {
                duration: u32::try_from(duration).unwrap_or(u32::MAX),
                cts,
                sync,
                data,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
