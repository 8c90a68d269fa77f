//! The route manager: BGP routes and tunnel liveness into the datapath and the kernel.
