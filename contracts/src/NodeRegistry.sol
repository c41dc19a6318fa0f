// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ITimingGuard} from "./interfaces/ITimingGuard.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {INodeRegistry} from "./interfaces/INodeRegistry.sol";

/// @title NodeRegistry
/// @notice VPN node operators stake NDS here to register a node. The control plane serves and
/// pays a node only while `isActive` is true.
/// @dev Owned by the governance timelock, which sets the minimum stake and unbonding period and
/// may slash. Each node names an agent: the hot key its software signs in with, separate from the
/// operator's wallet that holds the stake and receives rewards, so a lost agent key loses nothing.
/// The unbonding period must exceed the reward challenge window plus a governance round, so an
/// operator cannot exit before a slash for a bad epoch can pass; the TimingGuard checks it after
/// every change of any of those clocks. A node's id is derived from its operator and a salt, so
/// nobody can register an id another operator is about to register; and slashes are capped per
/// node per unbonding window, not per call.
contract NodeRegistry is INodeRegistry, Ownable {
    using SafeERC20 for IERC20;

    /// @notice A node's lifecycle. `None` is an id never registered; ids are never reused.
    enum Status {
        None,
        Active,
        Exiting,
        Withdrawn
    }

    /// @notice What the registry knows of a node.
    struct Node {
        address operator;
        Status status;
        uint64 unbondingEnd;
        address agent;
        uint256 stake;
        string metadataURI;
    }

    /// @notice Where a node's slash window stands: slashes within `unbondingPeriod` of `start`
    /// share one cap, MAX_SLASH_BPS of `baseStake` (the stake when the window started).
    struct SlashWindow {
        uint64 start;
        uint128 baseStake;
        uint128 slashed;
    }

    /// @notice Largest share of a node's stake that slashes may take within one unbonding window
    /// (measured on the stake at the window's start), in basis points.
    uint16 public constant MAX_SLASH_BPS = 5_000;
    /// @notice Bounds on the unbonding period governance may set.
    uint64 public constant MIN_UNBONDING_PERIOD = 1 hours;
    uint64 public constant MAX_UNBONDING_PERIOD = 365 days;

    /// @notice The NDS token.
    IERC20 public immutable token;
    /// @notice Checks the timing orderings after every unbonding period change.
    ITimingGuard public immutable timingGuard;

    /// @notice Stake a node needs to be Active, in NDS wei.
    uint256 public minStake;
    /// @notice Seconds between `requestExit` and `withdraw`.
    uint64 public unbondingPeriod;
    /// @notice Sum of every node's stake: always equals this contract's NDS balance from stakes.
    uint256 public totalStaked;

    mapping(bytes32 nodeId => Node) private _nodes;
    mapping(bytes32 nodeId => SlashWindow) private _slashWindows;

    event NodeRegistered(
        bytes32 indexed nodeId,
        address indexed operator,
        address indexed agent,
        uint256 stake,
        string metadataURI
    );
    event AgentChanged(bytes32 indexed nodeId, address indexed oldAgent, address indexed newAgent);
    event StakeIncreased(bytes32 indexed nodeId, uint256 amount, uint256 newStake);
    event ExitRequested(bytes32 indexed nodeId, uint64 unbondingEnd);
    event StakeWithdrawn(bytes32 indexed nodeId, address indexed operator, uint256 amount);
    event Slashed(bytes32 indexed nodeId, uint256 amount, bytes32 reason, uint256 remainingStake);
    event MetadataChanged(bytes32 indexed nodeId, string metadataURI);
    event MinStakeChanged(uint256 oldMinStake, uint256 newMinStake);
    event UnbondingPeriodChanged(uint64 oldPeriod, uint64 newPeriod);

    error ZeroAddress();
    error NodeExists(bytes32 nodeId);
    error UnknownNode(bytes32 nodeId);
    error NotOperator(bytes32 nodeId, address caller);
    error WrongStatus(bytes32 nodeId, Status status);
    error StakeBelowMinimum(uint256 stake, uint256 minStake);
    error ZeroAmount();
    error StillUnbonding(uint64 unbondingEnd);
    /// @notice `amount` is above `max`, what the node's current slash window has left.
    error SlashTooLarge(uint256 amount, uint256 max);
    error InvalidUnbondingPeriod(uint64 period);

    /// @param token_ The NDS token.
    /// @param owner_ Governance (the timelock).
    /// @param minStake_ Initial minimum stake (100 NDS in the default deployment).
    /// @param unbondingPeriod_ Initial unbonding period in seconds.
    /// @param timingGuard_ Keeps unbonding longer than window plus round (see ITimingGuard).
    constructor(
        IERC20 token_,
        address owner_,
        uint256 minStake_,
        uint64 unbondingPeriod_,
        ITimingGuard timingGuard_
    ) Ownable(owner_) {
        if (address(token_) == address(0)) revert ZeroAddress();
        token = token_;
        timingGuard = timingGuard_;
        _setMinStake(minStake_);
        _setUnbondingPeriod(unbondingPeriod_);
    }

    modifier onlyOperator(bytes32 nodeId) {
        Node storage node = _nodes[nodeId];
        if (node.status == Status.None) revert UnknownNode(nodeId);
        if (node.operator != msg.sender) revert NotOperator(nodeId, msg.sender);
        _;
    }

    /// @inheritdoc INodeRegistry
    function nodeIdOf(address operator, bytes32 salt) public pure returns (bytes32) {
        return keccak256(abi.encode(operator, salt));
    }

    /// @inheritdoc INodeRegistry
    /// @dev `metadataURI` is free-form; the control plane holds the authoritative endpoint and
    /// keys. An operator registers several nodes with several salts; a salt is never reused.
    function register(bytes32 salt, uint256 stake, address agent, string calldata metadataURI)
        external
        returns (bytes32 nodeId)
    {
        nodeId = nodeIdOf(msg.sender, salt);
        if (agent == address(0)) revert ZeroAddress();
        if (_nodes[nodeId].status != Status.None) revert NodeExists(nodeId);
        if (stake < minStake) revert StakeBelowMinimum(stake, minStake);

        _nodes[nodeId] = Node({
            operator: msg.sender,
            status: Status.Active,
            unbondingEnd: 0,
            agent: agent,
            stake: stake,
            metadataURI: metadataURI
        });
        totalStaked += stake;
        emit NodeRegistered(nodeId, msg.sender, agent, stake, metadataURI);
        token.safeTransferFrom(msg.sender, address(this), stake);
    }

    /// @notice Adds `amount` NDS to an Active node's stake (for example after a slash or a rise of
    /// the minimum).
    function increaseStake(bytes32 nodeId, uint256 amount) external onlyOperator(nodeId) {
        Node storage node = _nodes[nodeId];
        if (node.status != Status.Active) revert WrongStatus(nodeId, node.status);
        if (amount == 0) revert ZeroAmount();
        uint256 newStake = node.stake + amount;
        node.stake = newStake;
        totalStaked += amount;
        emit StakeIncreased(nodeId, amount, newStake);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Replaces the node's agent key (a lost or rotated hot key). Earnings are unaffected:
    /// they go to the operator.
    function setAgent(bytes32 nodeId, address newAgent) external onlyOperator(nodeId) {
        Node storage node = _nodes[nodeId];
        if (node.status == Status.Withdrawn) revert WrongStatus(nodeId, node.status);
        if (newAgent == address(0)) revert ZeroAddress();
        emit AgentChanged(nodeId, node.agent, newAgent);
        node.agent = newAgent;
    }

    /// @notice Replaces the node's metadata URI.
    function setMetadataURI(bytes32 nodeId, string calldata metadataURI)
        external
        onlyOperator(nodeId)
    {
        Node storage node = _nodes[nodeId];
        if (node.status != Status.Active) revert WrongStatus(nodeId, node.status);
        node.metadataURI = metadataURI;
        emit MetadataChanged(nodeId, metadataURI);
    }

    /// @notice Stops serving and starts the unbonding period; the node is no longer Active.
    function requestExit(bytes32 nodeId) external onlyOperator(nodeId) {
        Node storage node = _nodes[nodeId];
        if (node.status != Status.Active) revert WrongStatus(nodeId, node.status);
        uint64 end = uint64(block.timestamp) + unbondingPeriod;
        node.status = Status.Exiting;
        node.unbondingEnd = end;
        emit ExitRequested(nodeId, end);
    }

    /// @notice After the unbonding period, returns the (possibly slashed) stake to the operator.
    function withdraw(bytes32 nodeId) external onlyOperator(nodeId) {
        Node storage node = _nodes[nodeId];
        if (node.status != Status.Exiting) revert WrongStatus(nodeId, node.status);
        if (block.timestamp < node.unbondingEnd) revert StillUnbonding(node.unbondingEnd);
        uint256 amount = node.stake;
        node.stake = 0;
        node.status = Status.Withdrawn;
        totalStaked -= amount;
        emit StakeWithdrawn(nodeId, msg.sender, amount);
        if (amount > 0) token.safeTransfer(msg.sender, amount);
    }

    /// @notice Governance takes stake from a node, to the treasury (the owner): all slashes within
    /// one unbonding period of the window's first slash take at most half of the stake the node
    /// had when the window started, however many calls (or proposals) they are split into. Works
    /// on Active and Exiting nodes, so exiting does not dodge a slash.
    function slash(bytes32 nodeId, uint256 amount, bytes32 reason) external onlyOwner {
        Node storage node = _nodes[nodeId];
        if (node.status != Status.Active && node.status != Status.Exiting) {
            revert WrongStatus(nodeId, node.status);
        }
        if (amount == 0) revert ZeroAmount();
        SlashWindow storage window = _slashWindows[nodeId];
        if (window.start == 0 || block.timestamp >= uint256(window.start) + unbondingPeriod) {
            (window.start, window.baseStake, window.slashed) =
            (uint64(block.timestamp), SafeCast.toUint128(node.stake), 0);
        }
        uint256 cap = uint256(window.baseStake) * MAX_SLASH_BPS / 10_000;
        uint256 left = cap - window.slashed;
        if (amount > left) revert SlashTooLarge(amount, left);
        // casting to uint128 is safe: slashed + amount <= cap < baseStake, a uint128
        // forge-lint: disable-next-line(unsafe-typecast)
        window.slashed += uint128(amount);
        uint256 remaining = node.stake - amount;
        node.stake = remaining;
        totalStaked -= amount;
        emit Slashed(nodeId, amount, reason, remaining);
        token.safeTransfer(owner(), amount);
    }

    /// @notice Governance sets the stake a node needs to stay Active. Nodes below a raised minimum
    /// stop being Active until their operator tops up.
    function setMinStake(uint256 newMinStake) external onlyOwner {
        _setMinStake(newMinStake);
    }

    /// @notice Governance sets the unbonding period (applies to exits requested afterwards); the
    /// TimingGuard reverts when it would no longer outlast the challenge window plus a round.
    function setUnbondingPeriod(uint64 newPeriod) external onlyOwner {
        _setUnbondingPeriod(newPeriod);
        timingGuard.check();
    }

    /// @notice Everything about a node; `status` is `None` for an unknown id.
    function getNode(bytes32 nodeId)
        external
        view
        returns (
            address operator,
            address agent,
            uint256 stake,
            Status status,
            uint64 unbondingEnd,
            string memory metadataURI
        )
    {
        Node storage node = _nodes[nodeId];
        return
            (
                node.operator,
                node.agent,
                node.stake,
                node.status,
                node.unbondingEnd,
                node.metadataURI
            );
    }

    /// @inheritdoc INodeRegistry
    function slashWindow(bytes32 nodeId)
        external
        view
        returns (uint64 start, uint256 baseStake, uint256 slashed)
    {
        SlashWindow storage window = _slashWindows[nodeId];
        return (window.start, window.baseStake, window.slashed);
    }

    /// @notice True while the node is registered, not exiting, and staked at least `minStake`.
    function isActive(bytes32 nodeId) external view returns (bool) {
        Node storage node = _nodes[nodeId];
        return node.status == Status.Active && node.stake >= minStake;
    }

    function _setMinStake(uint256 newMinStake) private {
        if (newMinStake == 0) revert ZeroAmount();
        emit MinStakeChanged(minStake, newMinStake);
        minStake = newMinStake;
    }

    function _setUnbondingPeriod(uint64 newPeriod) private {
        if (newPeriod < MIN_UNBONDING_PERIOD || newPeriod > MAX_UNBONDING_PERIOD) {
            revert InvalidUnbondingPeriod(newPeriod);
        }
        emit UnbondingPeriodChanged(unbondingPeriod, newPeriod);
        unbondingPeriod = newPeriod;
    }
}
