// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IRewardRoots
/// @notice How a pending reward root is stopped before it pays, and the on-chain bound on claims:
/// the guardian (a fast multisig, beside the governance timelock) revokes a pending root, the
/// oracle withdraws its own, and claims never pay more in total than the accepted root declares.
interface IRewardRoots {
    /// @notice The oracle withdrew its own pending root: the epoch is settled and pays nothing.
    event RootWithdrawn(uint64 indexed epoch, bytes32 root);

    /// @notice A claim of `amount` is more than the accepted root's declared `totalCumulative`
    /// has left unclaimed (`unclaimed`): the root's leaves add up to more than it declared.
    error ClaimsExceedTotal(uint256 amount, uint256 unclaimed);

    /// @notice The oracle withdraws its own pending root, if it is still `root` for `epoch`. Like
    /// a revocation, the epoch is settled and pays nothing; the oracle proposes the next one.
    function withdrawRoot(uint64 epoch, bytes32 root) external;

    /// @notice A guardian (the guardian key or the timelock) revokes the pending root, if it is
    /// still `root` for `epoch`.
    function revokeEpoch(uint64 epoch, bytes32 root) external;

    /// @notice Sum of everything ever paid by `claim`; never above `totalCumulative`.
    function totalClaimed() external view returns (uint128);
}
