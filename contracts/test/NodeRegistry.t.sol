// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {NodeRegistry} from "../src/NodeRegistry.sol";
import {NodusTestBase} from "./NodusTestBase.sol";

contract NodeRegistryTest is NodusTestBase {
    uint256 internal constant MIN_STAKE = 100 ether; // NodusDeployment.localParams
    uint64 internal constant UNBONDING = 1 hours; // NodusDeployment.localParams
    uint256 internal constant STAKE = 1_000 ether;

    bytes32 internal constant SALT1 = keccak256("node-1");
    bytes32 internal constant SALT2 = keccak256("node-2");
    // What operator1 registers with SALT1, and operator2 with SALT2.
    bytes32 internal NODE1 = keccak256(abi.encode(operator1, SALT1));
    bytes32 internal NODE2 = keccak256(abi.encode(operator2, SALT2));
    string internal constant URI = "https://node-1.example/meta.json";
    bytes32 internal constant REASON = keccak256("epoch 7: fabricated bandwidth");

    // ------------------------------------------------------------------ helpers

    function _register(address operator, bytes32 salt, uint256 stake, address agent)
        internal
        returns (bytes32 nodeId)
    {
        vm.startPrank(operator);
        token.approve(address(registry), stake);
        nodeId = registry.register(salt, stake, agent, URI);
        vm.stopPrank();
    }

    function _registerNode1() internal {
        _register(operator1, SALT1, STAKE, agent1);
    }

    function _requestExit(bytes32 nodeId, address operator) internal returns (uint64 unbondingEnd) {
        vm.prank(operator);
        registry.requestExit(nodeId);
        (,,,, unbondingEnd,) = registry.getNode(nodeId);
    }

    function _slash(bytes32 nodeId, uint256 amount) internal {
        vm.prank(address(timelock));
        registry.slash(nodeId, amount, REASON);
    }

    function _stakeOf(bytes32 nodeId) internal view returns (uint256 stake) {
        (,, stake,,,) = registry.getNode(nodeId);
    }

    function _statusOf(bytes32 nodeId) internal view returns (NodeRegistry.Status status) {
        (,,, status,,) = registry.getNode(nodeId);
    }

    function _increaseStake(bytes32 nodeId, address operator, uint256 amount) internal {
        vm.startPrank(operator);
        token.approve(address(registry), amount);
        registry.increaseStake(nodeId, amount);
        vm.stopPrank();
    }

    function _wrongStatus(bytes32 nodeId, NodeRegistry.Status status)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodeWithSelector(NodeRegistry.WrongStatus.selector, nodeId, status);
    }

    // ------------------------------------------------------------------ deployment / constructor

    function test_Deployment_IsWiredAsProduction() public view {
        assertEq(address(registry.token()), address(token));
        assertEq(registry.owner(), address(timelock));
        assertEq(registry.minStake(), MIN_STAKE);
        assertEq(registry.unbondingPeriod(), UNBONDING);
        assertEq(registry.totalStaked(), 0);
    }

    function test_Constants() public view {
        assertEq(registry.MAX_SLASH_BPS(), 5_000);
        assertEq(registry.MIN_UNBONDING_PERIOD(), 1 hours);
        assertEq(registry.MAX_UNBONDING_PERIOD(), 365 days);
    }

    /// @dev The unbonding period must outlast a slash's path (see the NodeRegistry docs).
    function test_Deployment_UnbondingExceedsChallengePlusVotingPeriod() public view {
        assertGt(registry.unbondingPeriod(), rewards.challengePeriod() + governor.votingPeriod());
    }

    /// @dev Stricter: the whole governance path of a slash (challenge window, voting delay,
    /// voting period, timelock delay) fits in the unbonding period.
    function test_Deployment_UnbondingExceedsWholeSlashPath() public view {
        uint256 slashPath = rewards.challengePeriod() + governor.votingDelay()
            + governor.votingPeriod() + timelock.getMinDelay();
        assertGt(registry.unbondingPeriod(), slashPath);
    }

    function test_Constructor_EmitsInitialParameters() public {
        vm.expectEmit();
        emit NodeRegistry.MinStakeChanged(0, 5 ether);
        vm.expectEmit();
        emit NodeRegistry.UnbondingPeriodChanged(0, 2 days);
        new NodeRegistry(token, address(timelock), 5 ether, 2 days, guard);
    }

    function test_RevertWhen_ConstructorTokenZero() public {
        vm.expectRevert(NodeRegistry.ZeroAddress.selector);
        new NodeRegistry(IERC20(address(0)), address(timelock), MIN_STAKE, UNBONDING, guard);
    }

    function test_RevertWhen_ConstructorOwnerZero() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableInvalidOwner.selector, address(0)));
        new NodeRegistry(token, address(0), MIN_STAKE, UNBONDING, guard);
    }

    function test_RevertWhen_ConstructorMinStakeZero() public {
        vm.expectRevert(NodeRegistry.ZeroAmount.selector);
        new NodeRegistry(token, address(timelock), 0, UNBONDING, guard);
    }

    function test_RevertWhen_ConstructorUnbondingOutOfBounds() public {
        vm.expectRevert(
            abi.encodeWithSelector(NodeRegistry.InvalidUnbondingPeriod.selector, 1 hours - 1)
        );
        new NodeRegistry(token, address(timelock), MIN_STAKE, 1 hours - 1, guard);
    }

    // ------------------------------------------------------------------ register

    function test_Register_StoresNode() public {
        _registerNode1();
        (
            address operator,
            address agent,
            uint256 stake,
            NodeRegistry.Status status,
            uint64 unbondingEnd,
            string memory metadataURI
        ) = registry.getNode(NODE1);
        assertEq(operator, operator1);
        assertEq(agent, agent1);
        assertEq(stake, STAKE);
        assertEq(uint8(status), uint8(NodeRegistry.Status.Active));
        assertEq(unbondingEnd, 0);
        assertEq(metadataURI, URI);
    }

    function test_Register_IsActive() public {
        _registerNode1();
        assertTrue(registry.isActive(NODE1));
    }

    function test_Register_PullsStake() public {
        uint256 before = token.balanceOf(operator1);
        _registerNode1();
        assertEq(token.balanceOf(operator1), before - STAKE);
        assertEq(token.balanceOf(address(registry)), STAKE);
        assertEq(registry.totalStaked(), STAKE);
    }

    function test_Register_EmitsNodeRegistered() public {
        vm.prank(operator1);
        token.approve(address(registry), STAKE);
        vm.expectEmit(address(registry));
        emit NodeRegistry.NodeRegistered(NODE1, operator1, agent1, STAKE, URI);
        vm.prank(operator1);
        assertEq(registry.register(SALT1, STAKE, agent1, URI), NODE1);
    }

    function test_NodeIdOf_HashesOperatorAndSalt() public view {
        assertEq(registry.nodeIdOf(operator1, SALT1), keccak256(abi.encode(operator1, SALT1)));
        assertEq(registry.nodeIdOf(operator1, SALT1), NODE1);
        assertTrue(registry.nodeIdOf(operator2, SALT1) != NODE1);
    }

    /// @notice Issue 8: a front-runner who copies a pending registration's salt gets its own id,
    /// never the pending operator's: the operator's transaction still registers NODE1.
    function test_Register_FrontRunnerCannotTakePendingId() public {
        address frontRunner = alice;
        vm.prank(frontRunner);
        token.approve(address(registry), STAKE);
        vm.prank(frontRunner);
        bytes32 squatted = registry.register(SALT1, STAKE, frontRunner, URI); // same salt, first

        _registerNode1(); // the operator's pending transaction lands afterwards
        assertTrue(squatted != NODE1);
        (address operator, address agent,,,,) = registry.getNode(NODE1);
        assertEq(operator, operator1);
        assertEq(agent, agent1);
        (address squatter,,,,,) = registry.getNode(squatted);
        assertEq(squatter, frontRunner);
    }

    function test_Register_StakeExactlyMinStake() public {
        _register(operator1, SALT1, MIN_STAKE, agent1);
        assertTrue(registry.isActive(NODE1));
    }

    function test_Register_OperatorMayRunSeveralNodes() public {
        _register(operator1, SALT1, STAKE, agent1);
        bytes32 second = _register(operator1, SALT2, 2 * STAKE, agent2);
        assertEq(second, registry.nodeIdOf(operator1, SALT2));
        assertEq(registry.totalStaked(), 3 * STAKE);
        assertTrue(registry.isActive(NODE1));
        assertTrue(registry.isActive(second));
    }

    function test_RevertWhen_RegisterStakeBelowMinStake() public {
        vm.prank(operator1);
        token.approve(address(registry), MIN_STAKE);
        vm.expectRevert(
            abi.encodeWithSelector(
                NodeRegistry.StakeBelowMinimum.selector, MIN_STAKE - 1, MIN_STAKE
            )
        );
        vm.prank(operator1);
        registry.register(SALT1, MIN_STAKE - 1, agent1, URI);
    }

    function test_RevertWhen_RegisterAgentZero() public {
        vm.prank(operator1);
        token.approve(address(registry), STAKE);
        vm.expectRevert(NodeRegistry.ZeroAddress.selector);
        vm.prank(operator1);
        registry.register(SALT1, STAKE, address(0), URI);
    }

    function test_RevertWhen_RegisterDuplicateId() public {
        _registerNode1();
        vm.prank(operator1);
        token.approve(address(registry), STAKE);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NodeExists.selector, NODE1));
        vm.prank(operator1);
        registry.register(SALT1, STAKE, agent2, URI);
    }

    function test_RevertWhen_RegisterReusesWithdrawnId() public {
        _registerNode1();
        vm.warp(_requestExit(NODE1, operator1));
        vm.prank(operator1);
        registry.withdraw(NODE1);

        vm.prank(operator1);
        token.approve(address(registry), STAKE);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NodeExists.selector, NODE1));
        vm.prank(operator1);
        registry.register(SALT1, STAKE, agent1, URI);
    }

    function test_RevertWhen_RegisterWithoutAllowance() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientAllowance.selector, address(registry), 0, STAKE
            )
        );
        vm.prank(operator1);
        registry.register(SALT1, STAKE, agent1, URI);
    }

    // ------------------------------------------------------------------ increaseStake

    function test_IncreaseStake_AddsToStakeAndTotal() public {
        _registerNode1();
        uint256 before = token.balanceOf(operator1);
        _increaseStake(NODE1, operator1, 50 ether);
        assertEq(_stakeOf(NODE1), STAKE + 50 ether);
        assertEq(registry.totalStaked(), STAKE + 50 ether);
        assertEq(token.balanceOf(operator1), before - 50 ether);
        assertEq(token.balanceOf(address(registry)), STAKE + 50 ether);
    }

    function test_IncreaseStake_EmitsStakeIncreased() public {
        _registerNode1();
        vm.prank(operator1);
        token.approve(address(registry), 50 ether);
        vm.expectEmit(address(registry));
        emit NodeRegistry.StakeIncreased(NODE1, 50 ether, STAKE + 50 ether);
        vm.prank(operator1);
        registry.increaseStake(NODE1, 50 ether);
    }

    function test_RevertWhen_IncreaseStakeNotOperator() public {
        _registerNode1();
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NotOperator.selector, NODE1, operator2));
        vm.prank(operator2);
        registry.increaseStake(NODE1, 1 ether);
    }

    function test_RevertWhen_IncreaseStakeUnknownNode() public {
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.UnknownNode.selector, NODE1));
        vm.prank(operator1);
        registry.increaseStake(NODE1, 1 ether);
    }

    function test_RevertWhen_IncreaseStakeZero() public {
        _registerNode1();
        vm.expectRevert(NodeRegistry.ZeroAmount.selector);
        vm.prank(operator1);
        registry.increaseStake(NODE1, 0);
    }

    function test_RevertWhen_IncreaseStakeWhileExiting() public {
        _registerNode1();
        _requestExit(NODE1, operator1);
        vm.expectRevert(_wrongStatus(NODE1, NodeRegistry.Status.Exiting));
        vm.prank(operator1);
        registry.increaseStake(NODE1, 1 ether);
    }

    // ------------------------------------------------------------------ setAgent

    function test_SetAgent_ReplacesAgent() public {
        _registerNode1();
        vm.prank(operator1);
        registry.setAgent(NODE1, agent2);
        (, address agent,,,,) = registry.getNode(NODE1);
        assertEq(agent, agent2);
    }

    function test_SetAgent_EmitsAgentChanged() public {
        _registerNode1();
        vm.expectEmit(address(registry));
        emit NodeRegistry.AgentChanged(NODE1, agent1, agent2);
        vm.prank(operator1);
        registry.setAgent(NODE1, agent2);
    }

    function test_SetAgent_AllowedWhileExiting() public {
        _registerNode1();
        _requestExit(NODE1, operator1);
        vm.prank(operator1);
        registry.setAgent(NODE1, agent2);
        (, address agent,,,,) = registry.getNode(NODE1);
        assertEq(agent, agent2);
    }

    function test_RevertWhen_SetAgentByAgent() public {
        _registerNode1();
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NotOperator.selector, NODE1, agent1));
        vm.prank(agent1);
        registry.setAgent(NODE1, agent2);
    }

    function test_RevertWhen_SetAgentNotOperator() public {
        _registerNode1();
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NotOperator.selector, NODE1, operator2));
        vm.prank(operator2);
        registry.setAgent(NODE1, agent2);
    }

    function test_RevertWhen_SetAgentZero() public {
        _registerNode1();
        vm.expectRevert(NodeRegistry.ZeroAddress.selector);
        vm.prank(operator1);
        registry.setAgent(NODE1, address(0));
    }

    function test_RevertWhen_SetAgentUnknownNode() public {
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.UnknownNode.selector, NODE1));
        vm.prank(operator1);
        registry.setAgent(NODE1, agent2);
    }

    function test_RevertWhen_SetAgentAfterWithdraw() public {
        _registerNode1();
        vm.warp(_requestExit(NODE1, operator1));
        vm.prank(operator1);
        registry.withdraw(NODE1);
        vm.expectRevert(_wrongStatus(NODE1, NodeRegistry.Status.Withdrawn));
        vm.prank(operator1);
        registry.setAgent(NODE1, agent2);
    }

    // ------------------------------------------------------------------ setMetadataURI

    function test_SetMetadataURI_Replaces() public {
        _registerNode1();
        vm.prank(operator1);
        registry.setMetadataURI(NODE1, "ipfs://new");
        (,,,,, string memory metadataURI) = registry.getNode(NODE1);
        assertEq(metadataURI, "ipfs://new");
    }

    function test_SetMetadataURI_EmitsMetadataChanged() public {
        _registerNode1();
        vm.expectEmit(address(registry));
        emit NodeRegistry.MetadataChanged(NODE1, "ipfs://new");
        vm.prank(operator1);
        registry.setMetadataURI(NODE1, "ipfs://new");
    }

    function test_RevertWhen_SetMetadataURINotOperator() public {
        _registerNode1();
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NotOperator.selector, NODE1, operator2));
        vm.prank(operator2);
        registry.setMetadataURI(NODE1, "ipfs://new");
    }

    function test_RevertWhen_SetMetadataURIWhileExiting() public {
        _registerNode1();
        _requestExit(NODE1, operator1);
        vm.expectRevert(_wrongStatus(NODE1, NodeRegistry.Status.Exiting));
        vm.prank(operator1);
        registry.setMetadataURI(NODE1, "ipfs://new");
    }

    function test_RevertWhen_SetMetadataURIUnknownNode() public {
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.UnknownNode.selector, NODE1));
        vm.prank(operator1);
        registry.setMetadataURI(NODE1, "ipfs://new");
    }

    // ------------------------------------------------------------------ requestExit

    function test_RequestExit_StartsUnbonding() public {
        _registerNode1();
        uint64 end = _requestExit(NODE1, operator1);
        assertEq(end, uint64(block.timestamp) + UNBONDING);
        assertEq(uint8(_statusOf(NODE1)), uint8(NodeRegistry.Status.Exiting));
        assertEq(_stakeOf(NODE1), STAKE); // still bonded
        assertEq(registry.totalStaked(), STAKE);
    }

    function test_RequestExit_NodeNoLongerActive() public {
        _registerNode1();
        _requestExit(NODE1, operator1);
        assertFalse(registry.isActive(NODE1));
    }

    function test_RequestExit_EmitsExitRequested() public {
        _registerNode1();
        vm.expectEmit(address(registry));
        emit NodeRegistry.ExitRequested(NODE1, uint64(block.timestamp) + UNBONDING);
        vm.prank(operator1);
        registry.requestExit(NODE1);
    }

    function test_RequestExit_KeepsPeriodInForceAtRequest() public {
        _registerNode1();
        uint64 end = _requestExit(NODE1, operator1);
        vm.prank(address(timelock));
        registry.setUnbondingPeriod(30 days);
        (,,,, uint64 endAfter,) = registry.getNode(NODE1);
        assertEq(endAfter, end);
    }

    function test_RevertWhen_RequestExitNotOperator() public {
        _registerNode1();
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NotOperator.selector, NODE1, operator2));
        vm.prank(operator2);
        registry.requestExit(NODE1);
    }

    function test_RevertWhen_RequestExitTwice() public {
        _registerNode1();
        _requestExit(NODE1, operator1);
        vm.expectRevert(_wrongStatus(NODE1, NodeRegistry.Status.Exiting));
        vm.prank(operator1);
        registry.requestExit(NODE1);
    }

    function test_RevertWhen_RequestExitUnknownNode() public {
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.UnknownNode.selector, NODE1));
        vm.prank(operator1);
        registry.requestExit(NODE1);
    }

    // ------------------------------------------------------------------ withdraw

    function test_RevertWhen_WithdrawStillUnbonding() public {
        _registerNode1();
        uint64 end = _requestExit(NODE1, operator1);
        vm.warp(end - 1);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.StillUnbonding.selector, end));
        vm.prank(operator1);
        registry.withdraw(NODE1);
    }

    function test_Withdraw_AtUnbondingEndPaysExactStake() public {
        _registerNode1();
        vm.warp(_requestExit(NODE1, operator1));
        uint256 before = token.balanceOf(operator1);

        vm.prank(operator1);
        registry.withdraw(NODE1);

        assertEq(token.balanceOf(operator1), before + STAKE);
        assertEq(token.balanceOf(address(registry)), 0);
        assertEq(registry.totalStaked(), 0);
    }

    function test_Withdraw_MarksNodeWithdrawn() public {
        _registerNode1();
        vm.warp(_requestExit(NODE1, operator1) + 1 days);
        vm.prank(operator1);
        registry.withdraw(NODE1);
        assertEq(uint8(_statusOf(NODE1)), uint8(NodeRegistry.Status.Withdrawn));
        assertEq(_stakeOf(NODE1), 0);
        assertFalse(registry.isActive(NODE1));
    }

    function test_Withdraw_EmitsStakeWithdrawn() public {
        _registerNode1();
        vm.warp(_requestExit(NODE1, operator1));
        vm.expectEmit(address(registry));
        emit NodeRegistry.StakeWithdrawn(NODE1, operator1, STAKE);
        vm.prank(operator1);
        registry.withdraw(NODE1);
    }

    function test_Withdraw_PaysStakeLeftAfterSlash() public {
        _registerNode1();
        uint64 end = _requestExit(NODE1, operator1);
        _slash(NODE1, 300 ether);
        vm.warp(end);
        uint256 before = token.balanceOf(operator1);
        vm.prank(operator1);
        registry.withdraw(NODE1);
        assertEq(token.balanceOf(operator1), before + STAKE - 300 ether);
    }

    function test_Withdraw_OtherNodesUnaffected() public {
        _registerNode1();
        _register(operator2, SALT2, 2 * STAKE, agent2);
        vm.warp(_requestExit(NODE1, operator1));
        vm.prank(operator1);
        registry.withdraw(NODE1);
        assertEq(registry.totalStaked(), 2 * STAKE);
        assertEq(token.balanceOf(address(registry)), 2 * STAKE);
        assertTrue(registry.isActive(NODE2));
    }

    function test_RevertWhen_WithdrawWhileActive() public {
        _registerNode1();
        vm.expectRevert(_wrongStatus(NODE1, NodeRegistry.Status.Active));
        vm.prank(operator1);
        registry.withdraw(NODE1);
    }

    function test_RevertWhen_WithdrawTwice() public {
        _registerNode1();
        vm.warp(_requestExit(NODE1, operator1));
        vm.prank(operator1);
        registry.withdraw(NODE1);
        vm.expectRevert(_wrongStatus(NODE1, NodeRegistry.Status.Withdrawn));
        vm.prank(operator1);
        registry.withdraw(NODE1);
    }

    function test_RevertWhen_WithdrawNotOperator() public {
        _registerNode1();
        vm.warp(_requestExit(NODE1, operator1));
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NotOperator.selector, NODE1, agent1));
        vm.prank(agent1);
        registry.withdraw(NODE1);
    }

    // ------------------------------------------------------------------ slash

    function test_Slash_ReducesStakeAndTotal() public {
        _registerNode1();
        _slash(NODE1, 200 ether);
        assertEq(_stakeOf(NODE1), STAKE - 200 ether);
        assertEq(registry.totalStaked(), STAKE - 200 ether);
        assertEq(token.balanceOf(address(registry)), STAKE - 200 ether);
    }

    function test_Slash_SendsAmountToTimelock() public {
        _registerNode1();
        uint256 before = token.balanceOf(address(timelock));
        _slash(NODE1, 200 ether);
        assertEq(token.balanceOf(address(timelock)), before + 200 ether);
    }

    function test_Slash_EmitsSlashed() public {
        _registerNode1();
        vm.expectEmit(address(registry));
        emit NodeRegistry.Slashed(NODE1, 200 ether, REASON, STAKE - 200 ether);
        _slash(NODE1, 200 ether);
    }

    function test_Slash_ExactlyHalf() public {
        _registerNode1();
        _slash(NODE1, STAKE / 2);
        assertEq(_stakeOf(NODE1), STAKE / 2);
    }

    function test_Slash_ExitingNode() public {
        _registerNode1();
        _requestExit(NODE1, operator1);
        _slash(NODE1, 100 ether);
        assertEq(_stakeOf(NODE1), STAKE - 100 ether);
        assertEq(uint8(_statusOf(NODE1)), uint8(NodeRegistry.Status.Exiting));
    }

    function test_Slash_ExitingNodePastUnbondingEndNotYetWithdrawn() public {
        _registerNode1();
        vm.warp(_requestExit(NODE1, operator1) + 1 days);
        _slash(NODE1, 100 ether);
        assertEq(_stakeOf(NODE1), STAKE - 100 ether);
    }

    function test_Slash_BelowMinStakeDeactivatesUntilTopUp() public {
        _register(operator1, SALT1, 150 ether, agent1);
        _slash(NODE1, 60 ether); // 90 NDS left, minimum 100
        assertFalse(registry.isActive(NODE1));
        assertEq(uint8(_statusOf(NODE1)), uint8(NodeRegistry.Status.Active));

        _increaseStake(NODE1, operator1, 9 ether); // 99: still short
        assertFalse(registry.isActive(NODE1));
        _increaseStake(NODE1, operator1, 1 ether); // 100
        assertTrue(registry.isActive(NODE1));
    }

    function test_RevertWhen_SlashNotOwner() public {
        _registerNode1();
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        vm.prank(alice);
        registry.slash(NODE1, 1 ether, REASON);
    }

    function test_RevertWhen_SlashByOperatorItself() public {
        _registerNode1();
        vm.expectRevert(
            abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, operator1)
        );
        vm.prank(operator1);
        registry.slash(NODE1, 1 ether, REASON);
    }

    function test_RevertWhen_SlashAboveHalf() public {
        _registerNode1();
        vm.expectRevert(
            abi.encodeWithSelector(NodeRegistry.SlashTooLarge.selector, STAKE / 2 + 1, STAKE / 2)
        );
        _slash(NODE1, STAKE / 2 + 1);
    }

    function test_RevertWhen_SlashZero() public {
        _registerNode1();
        vm.expectRevert(NodeRegistry.ZeroAmount.selector);
        _slash(NODE1, 0);
    }

    function test_RevertWhen_SlashUnknownNode() public {
        vm.expectRevert(_wrongStatus(NODE1, NodeRegistry.Status.None));
        _slash(NODE1, 1 ether);
    }

    function test_RevertWhen_SlashWithdrawnNode() public {
        _registerNode1();
        vm.warp(_requestExit(NODE1, operator1));
        vm.prank(operator1);
        registry.withdraw(NODE1);
        vm.expectRevert(_wrongStatus(NODE1, NodeRegistry.Status.Withdrawn));
        _slash(NODE1, 1 ether);
    }

    function test_Slash_SplitSlashesShareOneCap() public {
        _registerNode1();
        _slash(NODE1, 300 ether);
        vm.warp(block.timestamp + UNBONDING - 1); // still the same window
        vm.expectRevert(
            abi.encodeWithSelector(NodeRegistry.SlashTooLarge.selector, 201 ether, 200 ether)
        );
        _slash(NODE1, 201 ether);
        _slash(NODE1, 200 ether);
        assertEq(_stakeOf(NODE1), STAKE / 2);
        (uint64 start, uint256 base, uint256 slashed) = registry.slashWindow(NODE1);
        assertEq(start, block.timestamp - (UNBONDING - 1));
        assertEq(base, STAKE);
        assertEq(slashed, STAKE / 2);
    }

    function test_Slash_NewWindowAfterUnbondingPeriod() public {
        _registerNode1();
        _slash(NODE1, STAKE / 2);
        vm.warp(block.timestamp + UNBONDING); // the window has passed
        vm.expectRevert(
            abi.encodeWithSelector(NodeRegistry.SlashTooLarge.selector, 251 ether, 250 ether)
        );
        _slash(NODE1, 251 ether); // half of the 500 left at the new window's start
        _slash(NODE1, 250 ether);
        assertEq(_stakeOf(NODE1), 250 ether);
    }

    function test_Slash_TopUpDoesNotRaiseTheWindowCap() public {
        _registerNode1();
        _slash(NODE1, STAKE / 2);
        _increaseStake(NODE1, operator1, STAKE);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.SlashTooLarge.selector, 1, 0));
        _slash(NODE1, 1);
    }

    // ------------------------------------------------------------------ setMinStake

    function test_SetMinStake_Updates() public {
        vm.prank(address(timelock));
        registry.setMinStake(500 ether);
        assertEq(registry.minStake(), 500 ether);
    }

    function test_SetMinStake_EmitsMinStakeChanged() public {
        vm.expectEmit(address(registry));
        emit NodeRegistry.MinStakeChanged(MIN_STAKE, 500 ether);
        vm.prank(address(timelock));
        registry.setMinStake(500 ether);
    }

    function test_SetMinStake_RaiseDeactivatesUnderbondedNodes() public {
        _register(operator1, SALT1, 200 ether, agent1);
        _register(operator2, SALT2, 600 ether, agent2);
        vm.prank(address(timelock));
        registry.setMinStake(500 ether);
        assertFalse(registry.isActive(NODE1));
        assertTrue(registry.isActive(NODE2));

        _increaseStake(NODE1, operator1, 300 ether);
        assertTrue(registry.isActive(NODE1));
    }

    function test_SetMinStake_LowerReactivatesNodes() public {
        _register(operator1, SALT1, 200 ether, agent1);
        vm.prank(address(timelock));
        registry.setMinStake(500 ether);
        vm.prank(address(timelock));
        registry.setMinStake(150 ether);
        assertTrue(registry.isActive(NODE1));
    }

    function test_SetMinStake_AppliesToNewRegistrations() public {
        vm.prank(address(timelock));
        registry.setMinStake(500 ether);
        vm.prank(operator1);
        token.approve(address(registry), 499 ether);
        vm.expectRevert(
            abi.encodeWithSelector(NodeRegistry.StakeBelowMinimum.selector, 499 ether, 500 ether)
        );
        vm.prank(operator1);
        registry.register(NODE1, 499 ether, agent1, URI);
    }

    function test_RevertWhen_SetMinStakeNotOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        vm.prank(alice);
        registry.setMinStake(1 ether);
    }

    function test_RevertWhen_SetMinStakeZero() public {
        vm.expectRevert(NodeRegistry.ZeroAmount.selector);
        vm.prank(address(timelock));
        registry.setMinStake(0);
    }

    // ------------------------------------------------------------------ setUnbondingPeriod

    function test_SetUnbondingPeriod_Updates() public {
        vm.prank(address(timelock));
        registry.setUnbondingPeriod(14 days);
        assertEq(registry.unbondingPeriod(), 14 days);
    }

    function test_SetUnbondingPeriod_EmitsUnbondingPeriodChanged() public {
        vm.expectEmit(address(registry));
        emit NodeRegistry.UnbondingPeriodChanged(UNBONDING, 14 days);
        vm.prank(address(timelock));
        registry.setUnbondingPeriod(14 days);
    }

    function test_SetUnbondingPeriod_AcceptsBounds() public {
        vm.startPrank(address(timelock));
        registry.setUnbondingPeriod(365 days);
        assertEq(registry.unbondingPeriod(), 365 days);
        registry.setUnbondingPeriod(1 hours);
        assertEq(registry.unbondingPeriod(), 1 hours);
        vm.stopPrank();
    }

    function test_SetUnbondingPeriod_AppliesToLaterExits() public {
        vm.prank(address(timelock));
        registry.setUnbondingPeriod(14 days);
        _registerNode1();
        assertEq(_requestExit(NODE1, operator1), uint64(block.timestamp) + 14 days);
    }

    function test_RevertWhen_SetUnbondingPeriodBelowMin() public {
        vm.expectRevert(
            abi.encodeWithSelector(NodeRegistry.InvalidUnbondingPeriod.selector, 1 hours - 1)
        );
        vm.prank(address(timelock));
        registry.setUnbondingPeriod(1 hours - 1);
    }

    function test_RevertWhen_SetUnbondingPeriodAboveMax() public {
        vm.expectRevert(
            abi.encodeWithSelector(NodeRegistry.InvalidUnbondingPeriod.selector, 365 days + 1)
        );
        vm.prank(address(timelock));
        registry.setUnbondingPeriod(365 days + 1);
    }

    function test_RevertWhen_SetUnbondingPeriodNotOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        vm.prank(alice);
        registry.setUnbondingPeriod(2 hours);
    }

    // ------------------------------------------------------------------ getNode / isActive

    function test_GetNode_UnknownIsEmpty() public view {
        (
            address operator,
            address agent,
            uint256 stake,
            NodeRegistry.Status status,
            uint64 unbondingEnd,
            string memory metadataURI
        ) = registry.getNode(NODE1);
        assertEq(operator, address(0));
        assertEq(agent, address(0));
        assertEq(stake, 0);
        assertEq(uint8(status), uint8(NodeRegistry.Status.None));
        assertEq(unbondingEnd, 0);
        assertEq(bytes(metadataURI).length, 0);
    }

    function test_GetNode_AfterWithdrawKeepsIdentity() public {
        _registerNode1();
        uint64 end = _requestExit(NODE1, operator1);
        vm.warp(end);
        vm.prank(operator1);
        registry.withdraw(NODE1);
        (
            address operator,
            address agent,
            uint256 stake,
            NodeRegistry.Status status,
            uint64 unbondingEnd,
        ) = registry.getNode(NODE1);
        assertEq(operator, operator1);
        assertEq(agent, agent1);
        assertEq(stake, 0);
        assertEq(uint8(status), uint8(NodeRegistry.Status.Withdrawn));
        assertEq(unbondingEnd, end);
    }

    function test_IsActive_FalseForUnknownNode() public view {
        assertFalse(registry.isActive(NODE1));
    }

    // ------------------------------------------------------------------ fuzz

    function testFuzz_Register_AnyStakeAtLeastMin(uint256 stake) public {
        stake = bound(stake, MIN_STAKE, DEV_NDS);
        uint256 before = token.balanceOf(operator1);
        _register(operator1, SALT1, stake, agent1);
        assertEq(_stakeOf(NODE1), stake);
        assertEq(registry.totalStaked(), stake);
        assertEq(token.balanceOf(operator1), before - stake);
        assertTrue(registry.isActive(NODE1));
    }

    function testFuzz_RevertWhen_RegisterBelowMin(uint256 stake) public {
        stake = bound(stake, 0, MIN_STAKE - 1);
        vm.prank(operator1);
        token.approve(address(registry), stake);
        vm.expectRevert(
            abi.encodeWithSelector(NodeRegistry.StakeBelowMinimum.selector, stake, MIN_STAKE)
        );
        vm.prank(operator1);
        registry.register(NODE1, stake, agent1, URI);
    }

    function testFuzz_IncreaseStake(uint256 stake, uint256 amount) public {
        stake = bound(stake, MIN_STAKE, DEV_NDS / 2);
        amount = bound(amount, 1, DEV_NDS / 2);
        _register(operator1, SALT1, stake, agent1);
        _increaseStake(NODE1, operator1, amount);
        assertEq(_stakeOf(NODE1), stake + amount);
        assertEq(registry.totalStaked(), token.balanceOf(address(registry)));
    }

    function testFuzz_Slash_WithinCap(uint256 stake, uint256 amount) public {
        stake = bound(stake, MIN_STAKE, DEV_NDS);
        amount = bound(amount, 1, stake / 2);
        _register(operator1, SALT1, stake, agent1);
        uint256 treasuryBefore = token.balanceOf(address(timelock));

        _slash(NODE1, amount);

        assertEq(_stakeOf(NODE1), stake - amount);
        assertEq(registry.totalStaked(), stake - amount);
        assertEq(token.balanceOf(address(registry)), stake - amount);
        assertEq(token.balanceOf(address(timelock)), treasuryBefore + amount);
        assertEq(registry.isActive(NODE1), stake - amount >= MIN_STAKE);
    }

    function testFuzz_RevertWhen_SlashAboveCap(uint256 stake, uint256 amount) public {
        stake = bound(stake, MIN_STAKE, DEV_NDS);
        amount = bound(amount, stake / 2 + 1, type(uint256).max / 2);
        _register(operator1, SALT1, stake, agent1);
        vm.expectRevert(
            abi.encodeWithSelector(NodeRegistry.SlashTooLarge.selector, amount, stake / 2)
        );
        _slash(NODE1, amount);
    }

    function testFuzz_Withdraw_PaysStakeMinusSlash(uint256 stake, uint256 amount, uint64 extra)
        public
    {
        stake = bound(stake, MIN_STAKE, DEV_NDS);
        amount = bound(amount, 1, stake / 2);
        _register(operator1, SALT1, stake, agent1);
        uint256 before = token.balanceOf(operator1);
        uint64 end = _requestExit(NODE1, operator1);
        _slash(NODE1, amount);
        vm.warp(end + bound(extra, 0, 365 days));

        vm.prank(operator1);
        registry.withdraw(NODE1);

        assertEq(token.balanceOf(operator1), before + stake - amount);
        assertEq(registry.totalStaked(), 0);
        assertEq(token.balanceOf(address(registry)), 0);
    }

    function testFuzz_SetUnbondingPeriod_Bounds(uint64 period) public {
        vm.prank(address(timelock));
        if (period < 1 hours || period > 365 days) {
            vm.expectRevert(
                abi.encodeWithSelector(NodeRegistry.InvalidUnbondingPeriod.selector, period)
            );
            registry.setUnbondingPeriod(period);
        } else {
            registry.setUnbondingPeriod(period);
            assertEq(registry.unbondingPeriod(), period);
        }
    }
}
