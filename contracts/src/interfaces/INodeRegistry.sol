// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title INodeRegistry
/// @notice Node ids bound to their operator, and the slash cap per unbonding window.
interface INodeRegistry {
    /// @notice The id `operator` gets by registering with `salt`:
    /// `keccak256(abi.encode(operator, salt))`. Nobody else can register it, so a pending
    /// registration cannot be front-run onto another operator.
    function nodeIdOf(address operator, bytes32 salt) external pure returns (bytes32);

    /// @notice Registers the node `nodeIdOf(msg.sender, salt)` with msg.sender as its operator,
    /// pulling `stake` NDS (approve first).
    /// @param agent The node's hot key (what `nodus-agent` signs in with).
    /// @param metadataURI Where the node describes itself.
    /// @return nodeId The new node's id.
    function register(bytes32 salt, uint256 stake, address agent, string calldata metadataURI)
        external
        returns (bytes32 nodeId);

    /// @notice The node's current slash window: when it started, the stake at its start, and what
    /// was slashed since (all zero before the first slash).
    function slashWindow(bytes32 nodeId)
        external
        view
        returns (uint64 start, uint256 baseStake, uint256 slashed);
}
