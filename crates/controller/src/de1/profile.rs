//! Profile upload (pyde1-http-api.md §6.1, de1-profiles.md).
//!
//! The profile is validated and completely encoded before the first byte is written
//! (`de1_protocol::profile::encode_profile`); a profile that does not fit the machine
//! leaves the DE1 untouched. Then HeaderWrite and every FrameWrite are written in order,
//! each acknowledged, followed by TANK_TEMP when the profile sets a tank temperature and
//! overriding it is allowed (written only if it differs from the cached register, then
//! read back).
//!
//! The mirror claims a profile only after every write succeeded. If any write fails the
//! upload is reported failed ([`De1Error::ProfileUploadFailed`]) and the DE1's profile
//! is marked [`ProfileState::Failed`] — it holds a mix of two profiles.

use std::sync::Arc;
use std::time::Duration;

use de1_protocol::mmr::{MmrRegister, MmrValue};
use de1_protocol::profile::{encode_profile, EncodedProfile};

use super::{De1, De1Error, ProfileState, LOG};

/// Choices that come from the controller's settings, not from the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileOptions {
    /// `profile_can_override_tank_temperature`: write the profile's tank temperature.
    pub override_tank_temperature: bool,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        ProfileOptions {
            override_tank_temperature: true,
        }
    }
}

/// A profile now loaded in the DE1.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadedProfile {
    /// SHA-1 of the source bytes (pyDE1's profile id).
    pub id: String,
    /// SHA-1 of the frame bytes (pyDE1's fingerprint).
    pub fingerprint: String,
    /// Everything the sequencer takes from the profile (stop limits, move-on weights,
    /// preinfuse frame count).
    pub encoded: Arc<EncodedProfile>,
    /// TANK_TEMP written, °C, if the profile changed it.
    pub tank_temperature_written: Option<u32>,
    /// Number of GATT writes of the frames (header included).
    pub writes: usize,
    /// Time from the first write to the last acknowledgement.
    pub elapsed: Duration,
}

impl De1 {
    /// Validates, encodes and uploads a JSON v2 profile.
    pub async fn upload_profile(
        &self,
        source: &[u8],
        options: ProfileOptions,
    ) -> Result<UploadedProfile, De1Error> {
        // Encode first: a refused profile never reaches the machine.
        let encoded = Arc::new(encode_profile(source)?);
        self.upload_encoded(encoded, options).await
    }

    /// Uploads an already encoded profile.
    pub async fn upload_encoded(
        &self,
        encoded: Arc<EncodedProfile>,
        options: ProfileOptions,
    ) -> Result<UploadedProfile, De1Error> {
        self.ensure_writable()?;
        let _one_at_a_time = self.profile_lock().await;
        self.ensure_writable()?;
        let id = encoded.id.clone();
        let writes = encoded.writes();
        let total = writes.len()
            + usize::from(options.override_tank_temperature && encoded.tank_temperature.is_some());
        log::info!(
            target: LOG,
            "uploading profile {id} ({:?}, {} frames)",
            encoded.profile.title.as_deref().unwrap_or(""),
            encoded.header.number_of_frames
        );
        self.set_profile_state(ProfileState::Uploading { id: id.clone() });
        let start = tokio::time::Instant::now();
        let fail = |written: usize, cause: De1Error| {
            let reason = cause.to_string();
            log::error!(target: LOG, "profile upload {id} failed after {written} of {total} writes: {reason}");
            self.set_profile_state(ProfileState::Failed {
                id: id.clone(),
                reason: reason.clone(),
            });
            De1Error::ProfileUploadFailed {
                written,
                total,
                cause: reason,
            }
        };
        for (i, (c, bytes)) in writes.iter().enumerate() {
            log::debug!(target: LOG, "{c} {}", hex::encode(bytes));
            if let Err(e) = self.write(*c, bytes).await {
                return Err(fail(i, e));
            }
        }
        let elapsed = start.elapsed();

        let mut tank_temperature_written = None;
        if options.override_tank_temperature {
            if let Some(t) = encoded.tank_temperature {
                // Validated by the encoder to 0 … 100 °C.
                let want = t.round_ties_even() as u32;
                let cached = self.with_mirror(|m| m.register_f64(MmrRegister::TankTemp));
                if cached != Some(f64::from(want)) {
                    match self
                        .write_register_unchecked(MmrRegister::TankTemp, &MmrValue::Integer(want))
                        .await
                    {
                        Ok(_) => tank_temperature_written = Some(want),
                        Err(e) => return Err(fail(writes.len(), e)),
                    }
                }
            }
        }

        let at = self.clock().now();
        self.set_profile_state(ProfileState::Loaded {
            id: id.clone(),
            fingerprint: encoded.fingerprint.clone(),
            at,
        });
        log::info!(target: LOG, "profile {id} loaded in {elapsed:?}");
        Ok(UploadedProfile {
            id,
            fingerprint: encoded.fingerprint.clone(),
            writes: writes.len(),
            encoded,
            tank_temperature_written,
            elapsed,
        })
    }
}
