//! Placeholder replaced by the survivability analysis.
use super::Topology;
/// x
#[derive(Debug, Clone, Default)]
pub(crate) struct Latency;
/// x
#[derive(Debug, Clone)]
pub struct SurvivabilityReport;
/// x
#[derive(Debug, Clone)]
pub struct Scenario;
/// x
#[derive(Debug, Clone)]
pub enum Failure {}
pub(crate) fn analyse(_t: &Topology, _l: Latency) -> SurvivabilityReport {
    SurvivabilityReport
}
