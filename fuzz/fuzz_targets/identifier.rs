//! `Identifier::decode` on arbitrary bytes: Aperture's 66-byte identifier layout.
//!
//! Checks that it never panics, that an accepted identifier encodes back to exactly the input and
//! decodes again to itself, and that 66 bytes are refused only for a version other than 0.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plannt_l402::{IDENTIFIER_LEN, Identifier, IdentifierError};

fuzz_target!(|data: &[u8]| {
    match Identifier::decode(data) {
        Ok(id) => {
            let encoded = id.encode();
            assert_eq!(&encoded[..], data);
            assert_eq!(Identifier::decode(&encoded), Ok(id));
        }
        Err(IdentifierError::WrongLength(len)) => {
            assert_eq!(len, data.len());
            assert_ne!(len, IDENTIFIER_LEN);
        }
        Err(IdentifierError::UnknownVersion(version)) => {
            assert_eq!(data.len(), IDENTIFIER_LEN);
            assert_ne!(version, Identifier::VERSION);
            assert_eq!(version, u16::from_be_bytes([data[0], data[1]]));
        }
        Err(other) => panic!("an error no identifier should give: {other}"),
    }
});
