//! The activation-form configuration (R23).
