//! The interaction payloads the bot decodes: serenity's `Interaction` deserialisation, then
//! Docobo's translation (actor, custom ids, picked values, typed prices), as the handler
//! does before a command runs; and Docobo's custom ids, which must read back byte for byte.

#![no_main]

use docobo::discord::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(decoded) = decode::interaction(data)
        && let Some(id) = &decoded.custom_id
    {
        assert!(decode::custom_id_round_trips(id), "{id:?}");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(decode::custom_id_round_trips(text), "{text:?}");
    }
});
