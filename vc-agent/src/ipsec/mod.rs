//! IKEv2/IPsec through strongSwan (R5–R11).
