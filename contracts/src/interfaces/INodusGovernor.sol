// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title INodusGovernor
/// @notice What NodusGovernor adds to OpenZeppelin's Governor: a quorum of the supply that can
/// vote. The protocol's own holdings (treasury, reward pool, swap reserves, unforwarded revenue,
/// node stakes) never vote, so counting them would make quorum unreachable.
interface INodusGovernor {
    /// @notice Governance replaced the list of protocol holders left out of the quorum.
    event QuorumExcludedChanged(address[] oldExcluded, address[] newExcluded);
    /// @notice A proposal's quorum was fixed at its creation.
    event ProposalQuorumSet(uint256 indexed proposalId, uint256 quorum, uint256 votableSupply);

    /// @notice A holder listed is address(0) or listed twice.
    error QuorumExcludedInvalid(address holder);
    /// @notice More holders listed than the governor reads per proposal.
    error QuorumExcludedTooMany(uint256 count, uint256 max);

    /// @notice The total supply minus the listed protocol holders' balances, now.
    function votableSupply() external view returns (uint256);

    /// @notice The quorum of `proposalId`, fixed when it was created (0 for an unknown id).
    function proposalQuorum(uint256 proposalId) external view returns (uint256);

    /// @notice The protocol holders whose balances the quorum leaves out.
    function quorumExcluded() external view returns (address[] memory);

    /// @notice Replaces the protocol holders left out of the quorum (only through governance).
    function setQuorumExcluded(address[] calldata holders) external;
}
