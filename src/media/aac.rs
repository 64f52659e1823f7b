//! The AAC AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1): sample rate and channels for the
//! sample entry and timescale, and the RFC 6381 codec string `mp4a.40.N` for playlists.

/// Why an AudioSpecificConfig could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AacConfigError {
    #[error("AudioSpecificConfig too short ({0} bytes)")]
    Truncated(usize),
    #[error("AudioSpecificConfig has a reserved sampling frequency index {0}")]
    BadFrequencyIndex(u8),
    #[error("AAC sample rate {0} Hz is not supported (0 or above 65535)")]
    UnsupportedSampleRate(u32),
}

/// What barrage needs from an AudioSpecificConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacConfig {
    /// Audio object type: 2 = AAC-LC, 5 = HE-AAC (SBR), 29 = HE-AACv2 (PS).
    pub object_type: u8,
    /// Core sample rate in Hz: the track timescale (one AAC frame = 1024 samples of it).
    pub sample_rate: u32,
    /// Channel configuration (1 = mono, 2 = stereo, ...; 0 = defined in the stream).
    pub channels: u8,
    /// The config bytes as received, for the `esds` box.
    pub raw: Vec<u8>,
}

impl AacConfig {
    /// The RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Reads `n` bits MSB-first at bit `pos`, advancing it.
fn read_bits(raw: &[u8], pos: &mut usize, n: usize) -> Result<u32, AacConfigError> {
    let mut v = 0u32;
    for _ in 0..n {
        let byte = raw
            .get(*pos / 8)
            .ok_or(AacConfigError::Truncated(raw.len()))?;
        v = (v << 1) | u32::from((byte >> (7 - *pos % 8)) & 1);
        *pos += 1;
    }
    Ok(v)
}

/// Parses an AudioSpecificConfig (the body of an AAC sequence header).
pub fn parse_audio_specific_config(raw: &[u8]) -> Result<AacConfig, AacConfigError> {
    let mut pos = 0;
    let mut object_type = read_bits(raw, &mut pos, 5)?;
    if object_type == 31 {
        object_type = 32 + read_bits(raw, &mut pos, 6)?;
    }
    let index = read_bits(raw, &mut pos, 4)? as u8;
    let sample_rate = if index == 15 {
        read_bits(raw, &mut pos, 24)?
    } else {
        *SAMPLE_RATES
            .get(usize::from(index))
            .ok_or(AacConfigError::BadFrequencyIndex(index))?
    };
    let channels = read_bits(raw, &mut pos, 4)? as u8;
    if sample_rate == 0 || sample_rate > 65535 {
        return Err(AacConfigError::UnsupportedSampleRate(sample_rate));
    }
    Ok(AacConfig {
        object_type: object_type as u8,
        sample_rate,
        channels,
        raw: raw.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lc_stereo_48k() {
        // What ffmpeg and OBS send: AAC-LC, index 3 (48 kHz), 2 channels.
        let c = parse_audio_specific_config(&[0x11, 0x90]).unwrap();
        assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 48000, 2));
        assert_eq!(c.codec_string(), "mp4a.40.2");
        // The 5-byte form with trailing SBR signalling still reads the core config.
        let c = parse_audio_specific_config(&[0x11, 0x90, 0x56, 0xe5, 0x00]).unwrap();
        assert_eq!(c.sample_rate, 48000);
    }

    #[test]
    fn he_aac_explicit_rate_and_escape() {
        // HE-AAC (5), 24 kHz core (index 6), mono.
        let c = parse_audio_specific_config(&[0x2b, 0x08]).unwrap();
        assert_eq!((c.object_type, c.sample_rate, c.channels), (5, 24000, 1));
        assert_eq!(c.codec_string(), "mp4a.40.5");
        // Explicit 24-bit rate (index 15): AAC-LC at 22050 Hz, stereo.
        // 00010 1111 000000000101011000100010 0010 -> bytes:
        let c = parse_audio_specific_config(&[0x17, 0x80, 0x2b, 0x11, 0x10]).unwrap();
        assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 22050, 2));
        // Escaped object type 31 + 6 bits (here 32 + 10 = 42, USAC).
        let c = parse_audio_specific_config(&[0xf9, 0x46, 0x40]).unwrap();
        assert_eq!((c.object_type, c.sample_rate), (42, 48000));
    }

    #[test]
    fn bad_configs() {
        assert_eq!(
            parse_audio_specific_config(&[]),
            Err(AacConfigError::Truncated(0))
        );
        assert_eq!(
            parse_audio_specific_config(&[0x16, 0x80]),
            Err(AacConfigError::BadFrequencyIndex(13))
        );
        // 96 kHz does not fit the 16-bit sample entry rate.
        assert_eq!(
            parse_audio_specific_config(&[0x10, 0x10]),
            Err(AacConfigError::UnsupportedSampleRate(96000))
        );
    }
}
