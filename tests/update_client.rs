//! End-to-end tests of `upkeep register` and `upkeep update`.
