//! Typed identifiers of the stored aggregates, so an account id is never passed
//! where a patient id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7 keeps index inserts local).
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A patient record.
    PatientId
);
id_type!(
    /// A patient's portal account.
    AccountId
);
id_type!(
    /// A recovery request (API.md: `flow_id`).
    FlowId
);
id_type!(
    /// A staff user.
    StaffId
);
id_type!(
    /// A message in the outbox.
    MessageId
);
