//! The gateway over real HTTP on loopback, paid through the dev Lightning network.
//!
//! Each test builds a [`plannt_serve::Gateway`] from a [`plannt_serve::Config`], serves it
//! on a fresh loopback port with its data in a temporary folder, and talks to it with reqwest.

mod admin;
mod attacks;
mod dialects;
mod generate;
mod hostile;
mod keep;
mod metering;
mod page;
mod protocol;
mod quotas;
mod sessions;
mod spending;
mod startup;
mod support;
