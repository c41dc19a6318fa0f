// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {console2} from "forge-std/console2.sol";
import {NDSToken} from "../../src/NDSToken.sol";
import {NodeRegistry} from "../../src/NodeRegistry.sol";
import {NodusTestBase} from "../NodusTestBase.sol";

/// @notice Drives the NodeRegistry through a node's whole life over several operators:
/// register, top up, exit, wait, withdraw, and governance slashing and moving the minimum.
contract RegistryHandler is CommonBase, StdCheats, StdUtils {
    NDSToken internal immutable token;
    NodeRegistry internal immutable registry;
    address internal immutable governance;

    address[] internal operators;
    bytes32[] internal nodeIds;
    mapping(bytes32 nodeId => address operator) public operatorOf;

    /// @dev The fuzzer's block timestamp is not carried between calls: each call warps here first.
    uint256 public currentTime;

    // Ghosts.
    uint256 public ghostStaked; // everything paid in
    uint256 public ghostWithdrawn; // everything paid back to operators
    uint256 public ghostSlashed; // everything sent to governance
    bool public withdrawPaidWrongly;
    bool public slashPaidWrongly;
    bool public unexpectedRevert;

    uint256 public registrations;
    uint256 public increases;
    uint256 public exits;
    uint256 public warps;
    uint256 public withdrawals;
    uint256 public slashes;
    uint256 public minStakeChanges;

    constructor(
        NDSToken token_,
        NodeRegistry registry_,
        address governance_,
        address[] memory operators_
    ) {
        token = token_;
        registry = registry_;
        governance = governance_;
        operators = operators_;
        currentTime = block.timestamp;
    }

    modifier atCurrentTime() {
        vm.warp(currentTime);
        _;
    }

    function nodeCount() external view returns (uint256) {
        return nodeIds.length;
    }

    function nodeAt(uint256 i) external view returns (bytes32) {
        return nodeIds[i];
    }

    function _pick(uint256 seed) internal view returns (bool found, bytes32 nodeId) {
        if (nodeIds.length == 0) return (false, bytes32(0));
        return (true, nodeIds[seed % nodeIds.length]);
    }

    function _status(bytes32 nodeId) internal view returns (NodeRegistry.Status status) {
        (,,, status,,) = registry.getNode(nodeId);
    }

    function register(uint256 operatorSeed, uint256 stake) external atCurrentTime {
        address operator = operators[operatorSeed % operators.length];
        stake = bound(stake, registry.minStake(), registry.minStake() + 10_000 ether);
        bytes32 salt = keccak256(abi.encode("node", nodeIds.length));
        bytes32 nodeId = registry.nodeIdOf(operator, salt);

        vm.prank(operator);
        try registry.register(salt, stake, operator, "ipfs://node") {
            nodeIds.push(nodeId);
            operatorOf[nodeId] = operator;
            ghostStaked += stake;
            registrations++;
        } catch {
            unexpectedRevert = true;
        }
    }

    function increaseStake(uint256 nodeSeed, uint256 amount) external atCurrentTime {
        (bool found, bytes32 nodeId) = _pick(nodeSeed);
        if (!found || _status(nodeId) != NodeRegistry.Status.Active) return;
        amount = bound(amount, 1, 1_000 ether);

        vm.prank(operatorOf[nodeId]);
        try registry.increaseStake(nodeId, amount) {
            ghostStaked += amount;
            increases++;
        } catch {
            unexpectedRevert = true;
        }
    }

    function requestExit(uint256 nodeSeed) external atCurrentTime {
        (bool found, bytes32 nodeId) = _pick(nodeSeed);
        if (!found || _status(nodeId) != NodeRegistry.Status.Active) return;

        vm.prank(operatorOf[nodeId]);
        try registry.requestExit(nodeId) {
            exits++;
        } catch {
            unexpectedRevert = true;
        }
    }

    /// @notice Time passes: up to two unbonding periods.
    function warp(uint256 secondsForward) external {
        currentTime += bound(secondsForward, 0, 2 * uint256(registry.unbondingPeriod()));
        vm.warp(currentTime);
        warps++;
    }

    function withdraw(uint256 nodeSeed) external atCurrentTime {
        (bool found, bytes32 nodeId) = _pick(nodeSeed);
        if (!found || _status(nodeId) != NodeRegistry.Status.Exiting) return;
        (address operator,, uint256 stake,, uint64 unbondingEnd,) = registry.getNode(nodeId);
        if (block.timestamp < unbondingEnd) return;
        uint256 before = token.balanceOf(operator);

        vm.prank(operator);
        try registry.withdraw(nodeId) {
            uint256 got = token.balanceOf(operator) - before;
            if (got != stake) withdrawPaidWrongly = true;
            ghostWithdrawn += got;
            withdrawals++;
        } catch {
            unexpectedRevert = true;
        }
    }

    function slash(uint256 nodeSeed, uint256 amount) external atCurrentTime {
        (bool found, bytes32 nodeId) = _pick(nodeSeed);
        if (!found) return;
        NodeRegistry.Status status = _status(nodeId);
        if (status != NodeRegistry.Status.Active && status != NodeRegistry.Status.Exiting) return;
        (,, uint256 stake,,,) = registry.getNode(nodeId);
        (uint64 start, uint256 base, uint256 slashed) = registry.slashWindow(nodeId);
        // What the node's slash window has left; a new window starts one unbonding period on.
        uint256 max = start == 0 || block.timestamp >= start + registry.unbondingPeriod()
            ? stake * registry.MAX_SLASH_BPS() / 10_000
            : base * registry.MAX_SLASH_BPS() / 10_000 - slashed;
        if (max == 0) return;
        amount = bound(amount, 1, max);
        uint256 before = token.balanceOf(governance);

        vm.prank(governance);
        try registry.slash(nodeId, amount, "invariant") {
            if (token.balanceOf(governance) - before != amount) slashPaidWrongly = true;
            ghostSlashed += amount;
            slashes++;
        } catch {
            unexpectedRevert = true;
        }
    }

    function setMinStake(uint256 seed, uint256 newMinStake) external atCurrentTime {
        if (seed % 4 != 0) return; // occasionally
        newMinStake = bound(newMinStake, 1, 2_000 ether);
        vm.prank(governance);
        registry.setMinStake(newMinStake);
        minStakeChanges++;
    }
}

contract RegistryInvariantTest is NodusTestBase {
    uint256 internal constant OPERATOR_FUNDS = 5_000_000 ether;

    RegistryHandler internal handler;

    function setUp() public override {
        super.setUp();
        address[] memory operators = new address[](3);
        (operators[0], operators[1], operators[2]) = (operator1, operator2, carol);
        for (uint256 i = 0; i < operators.length; i++) {
            vm.prank(address(timelock));
            require(token.transfer(operators[i], OPERATOR_FUNDS), "fund");
            vm.prank(operators[i]);
            token.approve(address(registry), type(uint256).max);
        }
        handler = new RegistryHandler(token, registry, address(timelock), operators);
        targetContract(address(handler));
    }

    function invariant_TotalStakedEqualsBalance() public view {
        assertEq(registry.totalStaked(), token.balanceOf(address(registry)));
    }

    function invariant_TotalStakedEqualsSumOfStakes() public view {
        uint256 sum;
        for (uint256 i = 0; i < handler.nodeCount(); i++) {
            (,, uint256 stake,,,) = registry.getNode(handler.nodeAt(i));
            sum += stake;
        }
        assertEq(registry.totalStaked(), sum);
    }

    function invariant_SlashWindowWithinCap() public view {
        for (uint256 i = 0; i < handler.nodeCount(); i++) {
            (, uint256 base, uint256 slashed) = registry.slashWindow(handler.nodeAt(i));
            assertLe(slashed, base * registry.MAX_SLASH_BPS() / 10_000);
        }
    }

    function invariant_WithdrawnNodeHasNoStake() public view {
        for (uint256 i = 0; i < handler.nodeCount(); i++) {
            (,, uint256 stake, NodeRegistry.Status status,,) = registry.getNode(handler.nodeAt(i));
            if (status == NodeRegistry.Status.Withdrawn) assertEq(stake, 0);
        }
    }

    function invariant_TokensConserved() public view {
        assertEq(
            handler.ghostStaked(),
            token.balanceOf(address(registry)) + handler.ghostWithdrawn() + handler.ghostSlashed()
        );
    }

    function invariant_PayoutsExact() public view {
        assertFalse(handler.withdrawPaidWrongly());
        assertFalse(handler.slashPaidWrongly());
        assertFalse(handler.unexpectedRevert());
    }

    function invariant_ActiveMeansActiveAndBonded() public view {
        for (uint256 i = 0; i < handler.nodeCount(); i++) {
            bytes32 nodeId = handler.nodeAt(i);
            (,, uint256 stake, NodeRegistry.Status status,,) = registry.getNode(nodeId);
            assertEq(
                registry.isActive(nodeId),
                status == NodeRegistry.Status.Active && stake >= registry.minStake()
            );
        }
    }

    function afterInvariant() public view {
        console2.log("registrations", handler.registrations());
        console2.log("increases", handler.increases());
        console2.log("exits", handler.exits());
        console2.log("warps", handler.warps());
        console2.log("withdrawals", handler.withdrawals());
        console2.log("slashes", handler.slashes());
        console2.log("min stake changes", handler.minStakeChanges());
    }
}
