// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IRewardPool} from "./interfaces/IRewardPool.sol";
import {ITimingGuard} from "./interfaces/ITimingGuard.sol";
import {IRewardRoots} from "./interfaces/IRewardRoots.sol";

/// @title RewardDistributor
/// @notice Pays node operators their NDS rewards from cumulative Merkle roots, after Morpho's
/// Universal Rewards Distributor. Each epoch the oracle (the control plane's key) proposes a root
/// of `(operator, cumulativeAmount)` leaves; after a challenge window anyone accepts it unless a
/// guardian (a fast guardian key, a multisig in production, or the governance timelock) revoked
/// it, or the oracle withdrew it. One claim pays everything unclaimed so far, and a proof from a
/// newer root supersedes older ones.
/// @dev Leaves are `keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount))))`
/// with sorted-pair hashing, exactly as OpenZeppelin's StandardMerkleTree builds them (double
/// hashing rules out 64-byte second preimages). Epoch numbers only move forward: a revoked epoch
/// is settled and pays nothing. The accepted total never exceeds what was funded through `fund`,
/// and the sum of all claims never exceeds the accepted total (`totalClaimed`, checked by every
/// claim), so a root whose leaves add up to more than it declares cannot pay the difference.
contract RewardDistributor is IRewardPool, IRewardRoots, AccessControl {
    using SafeERC20 for IERC20;

    /// @notice May propose roots (the control plane's oracle key).
    bytes32 public constant ORACLE_ROLE = keccak256("ORACLE_ROLE");
    /// @notice May revoke a pending root and nothing else: the guardian key given at deployment
    /// and the governance timelock (the role's admin, which alone grants and revokes it).
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");
    /// @notice Bounds on the challenge window governance may set.
    uint64 public constant MIN_CHALLENGE_PERIOD = 1;
    uint64 public constant MAX_CHALLENGE_PERIOD = 30 days;

    /// @notice A proposed root waiting for its challenge window to pass.
    struct PendingRoot {
        bytes32 root;
        bytes32 dataHash;
        uint256 totalCumulative;
        uint64 epoch;
        uint64 validAt;
    }

    /// @notice The NDS token paid out.
    IERC20 public immutable token;

    /// @notice The root claims are checked against (that of epoch `rootEpoch`).
    bytes32 public currentRoot;
    /// @notice keccak256 of the published data of the current root's epoch.
    bytes32 public currentDataHash;

    // The pending proposal. It is live while its epoch is above `currentEpoch`; settling it only
    // moves `currentEpoch`, and its slots are never zeroed (set non-zero at construction), so
    // every proposal rewrites warm-priced slots (2.9k) instead of fresh ones (20k each).
    bytes32 private _pendingRoot;
    bytes32 private _pendingDataHash;
    uint128 private _pendingTotal;
    uint64 private _pendingEpoch;
    uint64 private _pendingValidAt;

    /// @notice Sum of all leaves of the current root, as the oracle declared it.
    uint128 public totalCumulative;
    /// @notice Sum of everything `claim` ever paid; never above `totalCumulative`. It shares
    /// `totalCumulative`'s slot (high 128 bits), so the bound costs a claim one read and one
    /// write of a single slot.
    uint128 public totalClaimed;
    /// @notice Everything that entered through `fund`: accepted totals never exceed it, so every
    /// leaf within the declared total can be paid.
    uint128 public totalFunded;

    /// @notice The last settled epoch (accepted or revoked); the next proposal is this plus one.
    uint64 public currentEpoch;
    /// @notice The epoch whose root is `currentRoot` (0 before the first acceptance).
    uint64 public rootEpoch;
    /// @notice Seconds a proposed root waits before anyone may accept it.
    uint64 public challengePeriod;
    /// @notice Checks the timing orderings after every challenge window change.
    ITimingGuard public immutable timingGuard;
    /// @notice Largest increase of the cumulative total one epoch may bring, in NDS wei.
    uint256 public epochBudget;

    /// @notice What `account` has claimed so far (its last claimed cumulative amount).
    mapping(address account => uint256 amount) public claimed;

    event RootProposed(
        uint64 indexed epoch,
        bytes32 root,
        uint256 totalCumulative,
        bytes32 dataHash,
        uint64 validAt
    );
    event RootAccepted(
        uint64 indexed epoch, bytes32 root, uint256 totalCumulative, bytes32 dataHash
    );
    event RootRevoked(uint64 indexed epoch, bytes32 root);
    event Claimed(address indexed account, uint256 amount, uint256 cumulativeAmount);
    event Funded(address indexed from, uint256 amount, uint256 totalFunded);
    event EpochBudgetChanged(uint256 oldBudget, uint256 newBudget);
    event ChallengePeriodChanged(uint64 oldPeriod, uint64 newPeriod);

    error ZeroAddress();
    error WrongEpoch(uint64 epoch, uint64 expected);
    error PendingRootExists(uint64 epoch);
    error NoPendingRoot();
    error NotPending(uint64 epoch, bytes32 root);
    error CumulativeDecreased(uint256 totalCumulative, uint256 current);
    error BudgetExceeded(uint256 increase, uint256 budget);
    error Underfunded(uint256 totalCumulative, uint256 totalFunded);
    error ZeroAmount();
    error ChallengeWindowOpen(uint64 validAt);
    error InvalidProof();
    error NothingToClaim();
    error InvalidChallengePeriod(uint64 period);

    /// @param token_ The NDS token.
    /// @param governance The timelock: admin of every role, and a guardian.
    /// @param oracle The control plane's oracle key.
    /// @param guardian The fast guardian key (a multisig in production): may only revoke a
    /// pending root. The timelock replaces it with grantRole/revokeRole(GUARDIAN_ROLE).
    /// @param epochBudget_ Initial per-epoch budget in NDS wei.
    /// @param challengePeriod_ Initial challenge window in seconds.
    /// @param timingGuard_ Keeps the window longer than a governance round (see ITimingGuard).
    constructor(
        IERC20 token_,
        address governance,
        address oracle,
        address guardian,
        uint256 epochBudget_,
        uint64 challengePeriod_,
        ITimingGuard timingGuard_
    ) {
        if (
            address(token_) == address(0) || governance == address(0) || oracle == address(0)
                || guardian == address(0)
        ) {
            revert ZeroAddress();
        }
        token = token_;
        timingGuard = timingGuard_;
        _grantRole(DEFAULT_ADMIN_ROLE, governance);
        _grantRole(GUARDIAN_ROLE, governance);
        _grantRole(GUARDIAN_ROLE, guardian);
        _grantRole(ORACLE_ROLE, oracle);
        _setEpochBudget(epochBudget_);
        _setChallengePeriod(challengePeriod_);
        // Non-zero from the start: see the pending slots' comment.
        _pendingRoot = bytes32(uint256(1));
        _pendingDataHash = bytes32(uint256(1));
        _pendingValidAt = 1;
    }

    /// @notice Pulls `amount` NDS from msg.sender into the pool (approve first). Only funded NDS
    /// can back accepted roots: a plain transfer to this contract is not counted.
    function fund(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        uint128 funded = SafeCast.toUint128(uint256(totalFunded) + amount);
        totalFunded = funded;
        emit Funded(msg.sender, amount, funded);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice The oracle proposes the root of epoch `epoch` (must be `currentEpoch() + 1`).
    /// @param totalCumulative_ Sum of all leaves; may rise by at most `epochBudget` over the
    /// current root's, and never above `totalFunded`.
    /// @param dataHash keccak256 of the epoch's published data, so anyone can recompute the root.
    function proposeRoot(uint64 epoch, bytes32 root, uint256 totalCumulative_, bytes32 dataHash)
        external
        onlyRole(ORACLE_ROLE)
    {
        uint64 settled = currentEpoch;
        if (_pendingEpoch > settled) revert PendingRootExists(_pendingEpoch);
        if (epoch != settled + 1) revert WrongEpoch(epoch, settled + 1);
        uint256 current = totalCumulative;
        if (totalCumulative_ < current) revert CumulativeDecreased(totalCumulative_, current);
        uint256 increase = totalCumulative_ - current;
        if (increase > epochBudget) revert BudgetExceeded(increase, epochBudget);
        if (totalCumulative_ > totalFunded) revert Underfunded(totalCumulative_, totalFunded);

        uint64 validAt = uint64(block.timestamp) + challengePeriod;
        _pendingRoot = root;
        _pendingDataHash = dataHash;
        // casting to uint128 is safe: totalCumulative_ <= totalFunded, a uint128
        // forge-lint: disable-next-line(unsafe-typecast)
        _pendingTotal = uint128(totalCumulative_);
        _pendingEpoch = epoch;
        _pendingValidAt = validAt;
        emit RootProposed(epoch, root, totalCumulative_, dataHash, validAt);
    }

    /// @notice Anyone makes the pending root current once its challenge window has passed.
    function acceptRoot() external {
        uint64 epoch = _pendingEpoch;
        if (epoch <= currentEpoch) revert NoPendingRoot();
        if (block.timestamp < _pendingValidAt) revert ChallengeWindowOpen(_pendingValidAt);
        (bytes32 root, bytes32 dataHash, uint128 total) =
            (_pendingRoot, _pendingDataHash, _pendingTotal);
        currentRoot = root;
        currentDataHash = dataHash;
        totalCumulative = total;
        currentEpoch = epoch;
        rootEpoch = epoch;
        emit RootAccepted(epoch, root, total, dataHash);
    }

    /// @notice A guardian revokes whatever root is pending: its epoch is settled and pays
    /// nothing; the oracle proposes the next epoch. For a guardian acting in real time; a
    /// governance proposal, which executes days after it is written, and the watcher
    /// (`nodus rewards watch`) use `revokeEpoch`.
    function revokeRoot() external onlyRole(GUARDIAN_ROLE) {
        uint64 epoch = _pendingEpoch;
        if (epoch <= currentEpoch) revert NoPendingRoot();
        currentEpoch = epoch;
        emit RootRevoked(epoch, _pendingRoot);
    }

    /// @inheritdoc IRewardRoots
    /// @dev Only if the pending root is `root` for `epoch`, so a vote or a watcher about one root
    /// can never settle another that was proposed meanwhile.
    function revokeEpoch(uint64 epoch, bytes32 root) external onlyRole(GUARDIAN_ROLE) {
        _settlePending(epoch, root);
        emit RootRevoked(epoch, root);
    }

    /// @inheritdoc IRewardRoots
    function withdrawRoot(uint64 epoch, bytes32 root) external onlyRole(ORACLE_ROLE) {
        _settlePending(epoch, root);
        emit RootWithdrawn(epoch, root);
    }

    /// @dev Settles the pending epoch without paying, if it is `root` for `epoch`.
    function _settlePending(uint64 epoch, bytes32 root) private {
        if (_pendingEpoch <= currentEpoch) revert NoPendingRoot();
        if (epoch != _pendingEpoch || root != _pendingRoot) {
            revert NotPending(epoch, root);
        }
        currentEpoch = epoch;
    }

    /// @notice Pays `account` what it has not yet claimed of `cumulativeAmount`, proven against
    /// the current root. Anyone may submit it; the tokens always go to `account`. A leaf at or
    /// below what the account already claimed pays nothing, and no claim takes the sum of all
    /// claims above the accepted `totalCumulative`.
    function claim(address account, uint256 cumulativeAmount, bytes32[] calldata proof)
        external
        returns (uint256 amount)
    {
        if (!_proves(proof, currentRoot, account, cumulativeAmount)) revert InvalidProof();
        // claimed[account]'s slot, computed once for the read and the write.
        bytes32 claimedSlot;
        uint256 already;
        assembly ("memory-safe") {
            mstore(0x00, account)
            mstore(0x20, claimed.slot)
            claimedSlot := keccak256(0x00, 0x40)
            already := sload(claimedSlot)
        }
        if (cumulativeAmount <= already) revert NothingToClaim();
        // One read and one write of the slot holding totalCumulative (low 128 bits) and
        // totalClaimed (high 128 bits); the layout is pinned by a test.
        uint256 totals;
        assembly ("memory-safe") {
            totals := sload(totalCumulative.slot)
        }
        uint256 total = totals & type(uint128).max;
        uint256 paid = totals >> 128;
        unchecked {
            // No wrap: cumulativeAmount > already, and paid <= total always holds (totals only
            // grow, and this check keeps paid within them).
            amount = cumulativeAmount - already;
            if (amount > total - paid) revert ClaimsExceedTotal(amount, total - paid);
            paid += amount;
        }
        assembly ("memory-safe") {
            sstore(totalCumulative.slot, or(total, shl(128, paid)))
            sstore(claimedSlot, cumulativeAmount)
        }
        emit Claimed(account, amount, cumulativeAmount);
        token.safeTransfer(account, amount);
    }

    /// @dev True if `proof` proves the leaf of `(account, cumulativeAmount)` against `root`:
    /// exactly `MerkleProof.verifyCalldata(proof, root, leaf)` with the StandardMerkleTree leaf
    /// `keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount))))`, written in
    /// scratch-space assembly because claim's gas target has room for the claimed-total bound
    /// only without Solidity's per-level bounds checks and memory copies (about 800 gas on a
    /// 200-leaf tree). The ABI decoder has already checked that `proof` lies inside calldata.
    /// MerkleCompat.t.sol checks it against OpenZeppelin's npm tree for one to nine leaves.
    function _proves(
        bytes32[] calldata proof,
        bytes32 root,
        address account,
        uint256 cumulativeAmount
    ) private pure returns (bool) {
        bytes32 hash;
        assembly ("memory-safe") {
            mstore(0x00, account)
            mstore(0x20, cumulativeAmount)
            mstore(0x00, keccak256(0x00, 0x40))
            hash := keccak256(0x00, 0x20)
            let p := proof.offset
            let end := add(p, shl(5, proof.length))
            // Two levels per iteration (half the loop overhead), then the odd one out.
            for { let pairsEnd := sub(end, shl(5, and(proof.length, 1))) } lt(p, pairsEnd) {
                p := add(p, 0x40)
            } {
                // Sorted pair: the smaller word first (Hashes.commutativeKeccak256); equal
                // words land at 0x00 and 0x20 alike.
                let sibling := calldataload(p)
                let hashFirst := iszero(gt(hash, sibling))
                mstore(shl(5, iszero(hashFirst)), hash)
                mstore(shl(5, hashFirst), sibling)
                hash := keccak256(0x00, 0x40)
                sibling := calldataload(add(p, 0x20))
                hashFirst := iszero(gt(hash, sibling))
                mstore(shl(5, iszero(hashFirst)), hash)
                mstore(shl(5, hashFirst), sibling)
                hash := keccak256(0x00, 0x40)
            }
            if lt(p, end) {
                let sibling := calldataload(p)
                let hashFirst := iszero(gt(hash, sibling))
                mstore(shl(5, iszero(hashFirst)), hash)
                mstore(shl(5, hashFirst), sibling)
                hash := keccak256(0x00, 0x40)
            }
        }
        return hash == root;
    }

    /// @notice The root waiting for its challenge window (all zero when none).
    function pendingRoot() external view returns (PendingRoot memory pending) {
        if (_pendingEpoch > currentEpoch) {
            pending = PendingRoot(
                _pendingRoot, _pendingDataHash, _pendingTotal, _pendingEpoch, _pendingValidAt
            );
        }
    }

    /// @notice Governance sets the per-epoch budget.
    function setEpochBudget(uint256 newBudget) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setEpochBudget(newBudget);
    }

    /// @notice Governance sets the challenge window (applies to roots proposed afterwards); the
    /// TimingGuard reverts when it would no longer outlast a governance round, or the unbonding
    /// period would no longer outlast it plus a round.
    function setChallengePeriod(uint64 newPeriod) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setChallengePeriod(newPeriod);
        timingGuard.check();
    }

    function _setEpochBudget(uint256 newBudget) private {
        emit EpochBudgetChanged(epochBudget, newBudget);
        epochBudget = newBudget;
    }

    function _setChallengePeriod(uint64 newPeriod) private {
        if (newPeriod < MIN_CHALLENGE_PERIOD || newPeriod > MAX_CHALLENGE_PERIOD) {
            revert InvalidChallengePeriod(newPeriod);
        }
        emit ChallengePeriodChanged(challengePeriod, newPeriod);
        challengePeriod = newPeriod;
    }
}
