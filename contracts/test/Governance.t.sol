// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "forge-std/Vm.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IGovernor} from "@openzeppelin/contracts/governance/IGovernor.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {NodeRegistry} from "../src/NodeRegistry.sol";
import {NodusGovernor} from "../src/NodusGovernor.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";
import {SubscriptionManager} from "../src/SubscriptionManager.sol";
import {INodusGovernor} from "../src/interfaces/INodusGovernor.sol";
import {RewardTestBase} from "./RewardDistributor.t.sol";

/// @notice Proposal plumbing shared by the governance tests. Votes come only from the deployed
/// distribution: each holder delegates and votes with its own transactions (forge sends a
/// holder's transaction with a prank of that holder); nothing stands in for the treasury.
abstract contract GovernanceTestBase is RewardTestBase {
    uint8 internal constant AGAINST = 0;
    uint8 internal constant FOR = 1;
    uint8 internal constant ABSTAIN = 2;

    /// @notice Holders that delegated to themselves, in the order they vote in `_pass`.
    address[] internal voters;

    struct Proposal {
        address[] targets;
        uint256[] values;
        bytes[] calldatas;
        string description;
    }

    /// @notice `holder` delegates its own votes to `delegatee` (its own transaction).
    function _delegate(address holder, address delegatee) internal {
        vm.prank(holder);
        token.delegate(delegatee);
    }

    /// @notice Every listed holder self-delegates; one second passes so the checkpoints are past.
    function _delegateEach(address[] memory holders) internal {
        for (uint256 i = 0; i < holders.length; i++) {
            _delegate(holders[i], holders[i]);
            voters.push(holders[i]);
        }
        vm.warp(block.timestamp + 1);
    }

    function _proposal(address target, bytes memory data, string memory description)
        internal
        pure
        returns (Proposal memory p)
    {
        p.targets = new address[](1);
        p.targets[0] = target;
        p.values = new uint256[](1);
        p.calldatas = new bytes[](1);
        p.calldatas[0] = data;
        p.description = description;
    }

    function _descriptionHash(Proposal memory p) internal pure returns (bytes32) {
        return keccak256(bytes(p.description));
    }

    function _submit(address proposer, Proposal memory p) internal returns (uint256 id) {
        vm.prank(proposer);
        id = governor.propose(p.targets, p.values, p.calldatas, p.description);
    }

    function _toVoting(uint256 id) internal {
        vm.warp(governor.proposalSnapshot(id) + 1);
    }

    function _vote(address voter, uint256 id, uint8 support) internal {
        vm.prank(voter);
        governor.castVote(id, support);
    }

    /// @notice Every delegating holder votes `support`.
    function _voteAll(uint256 id, uint8 support) internal {
        for (uint256 i = 0; i < voters.length; i++) {
            _vote(voters[i], id, support);
        }
    }

    function _toDeadlinePassed(uint256 id) internal {
        vm.warp(governor.proposalDeadline(id) + 1);
    }

    function _queue(Proposal memory p) internal {
        governor.queue(p.targets, p.values, p.calldatas, _descriptionHash(p));
    }

    function _execute(Proposal memory p) internal {
        governor.execute(p.targets, p.values, p.calldatas, _descriptionHash(p));
    }

    /// @notice Proposes (first voter), votes For with every delegating holder, waits, queues:
    /// the proposal is ready to execute when this returns.
    function _passAndQueue(Proposal memory p) internal returns (uint256 id) {
        id = _submit(voters[0], p);
        _toVoting(id);
        _voteAll(id, FOR);
        _toDeadlinePassed(id);
        _queue(p);
        vm.warp(governor.proposalEta(id));
    }

    /// @notice The whole flow, as fast as the delays allow, every delegating holder voting For.
    function _pass(Proposal memory p) internal returns (uint256 id) {
        id = _passAndQueue(p);
        _execute(p);
    }

    function _stateBit(IGovernor.ProposalState s) internal pure returns (bytes32) {
        return bytes32(uint256(1) << uint8(s));
    }
}

/// @notice The DAO on the local deployment (voting delay 1 s, voting period 60 s, timelock
/// delay 30 s, challenge window 120 s). The five dev accounts hold the circulating 500,000 NDS
/// (100,000 each), so the quorum is 4% of that: 20,000 NDS.
contract GovernanceTest is GovernanceTestBase {
    uint256 internal constant HOLDER_VOTES = 100_000 ether;
    uint256 internal constant CIRCULATING = 500_000 ether;

    /// @notice Accounts granted PROPOSER_ROLE / CANCELLER_ROLE on the timelock at deployment.
    address[] internal proposerGrants;
    address[] internal cancellerGrants;
    address[] internal adminGrants;

    function setUp() public override {
        vm.recordLogs();
        super.setUp();
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bytes32 granted = IAccessControl.RoleGranted.selector;
        for (uint256 i = 0; i < logs.length; i++) {
            if (logs[i].emitter != address(timelock) || logs[i].topics[0] != granted) continue;
            bytes32 role = logs[i].topics[1];
            address account = abi.decode(abi.encode(logs[i].topics[2]), (address));
            if (role == timelock.PROPOSER_ROLE()) proposerGrants.push(account);
            if (role == timelock.CANCELLER_ROLE()) cancellerGrants.push(account);
            if (role == timelock.DEFAULT_ADMIN_ROLE()) adminGrants.push(account);
        }
        _delegateEach(_addrs(alice, bob, carol, operator1, operator2));
    }

    function _setPriceProposal() internal view returns (Proposal memory) {
        return _proposal(
            address(subscriptions),
            abi.encodeCall(SubscriptionManager.setPrice, (12 ether)),
            "Raise the monthly price to 12 NDS"
        );
    }

    // ------------------------------------------------------------------ wiring

    function test_Governor_UsesTimestampClock() public view {
        assertEq(governor.clock(), block.timestamp);
        assertEq(governor.CLOCK_MODE(), "mode=timestamp");
        assertEq(token.CLOCK_MODE(), "mode=timestamp");
        assertEq(governor.votingDelay(), 1);
        assertEq(governor.votingPeriod(), 60);
        assertEq(timelock.getMinDelay(), 30);
        assertEq(governor.timelock(), address(timelock));
    }

    function test_Quorum_IsFourPercentOfVotableSupply() public view {
        // The treasury, reward pool and swap reserves hold 99.95% of the supply and never vote.
        assertEq(token.totalSupply(), 1_000_000_000 ether);
        assertEq(governor.votableSupply(), CIRCULATING);
        assertEq(governor.quorum(block.timestamp), 20_000 ether);
        address[] memory excluded = governor.quorumExcluded();
        assertEq(excluded.length, 5);
        assertEq(excluded[0], address(timelock));
        assertEq(excluded[1], address(rewards));
        assertEq(excluded[2], address(swap));
        assertEq(excluded[3], address(subscriptions));
        assertEq(excluded[4], address(registry));
    }

    /// @notice A proposal's quorum is fixed when it is created: NDS paid into the protocol
    /// afterwards (a subscription) lowers the votable supply of later proposals only.
    function test_ProposalQuorum_FixedAtCreation() public {
        uint256 id = _submit(alice, _setPriceProposal());
        assertEq(governor.proposalQuorum(id), 20_000 ether);

        vm.startPrank(bob);
        token.approve(address(subscriptions), 10 ether * 12);
        subscriptions.subscribe(bob, 12, 10 ether); // 120 NDS into the protocol
        vm.stopPrank();

        assertEq(governor.votableSupply(), CIRCULATING - 120 ether);
        assertEq(governor.quorum(block.timestamp), (CIRCULATING - 120 ether) * 4 / 100);
        assertEq(governor.proposalQuorum(id), 20_000 ether);
    }

    /// @notice Only a passed proposal changes which holders the quorum leaves out.
    function test_Dao_SetsQuorumExcluded() public {
        address[] memory list = governor.quorumExcluded();
        vm.expectRevert(abi.encodeWithSelector(IGovernor.GovernorOnlyExecutor.selector, alice));
        vm.prank(alice);
        governor.setQuorumExcluded(list);

        address[] memory longer = new address[](list.length + 1);
        for (uint256 i = 0; i < list.length; i++) {
            longer[i] = list[i];
        }
        address lostKeys = makeAddr("lost-keys"); // e.g. a wallet whose keys are known lost
        longer[list.length] = lostKeys;
        _pass(
            _proposal(
                address(governor),
                abi.encodeCall(NodusGovernor.setQuorumExcluded, (longer)),
                "Leave the lost wallet out of the quorum"
            )
        );
        assertEq(governor.quorumExcluded().length, 6);

        vm.prank(carol);
        assertTrue(token.transfer(lostKeys, 50_000 ether));
        assertEq(governor.votableSupply(), CIRCULATING - 50_000 ether);
    }

    function test_RevertWhen_QuorumExcludedListsAHolderTwice() public {
        address[] memory list = governor.quorumExcluded();
        list[1] = list[0];
        Proposal memory p = _proposal(
            address(governor),
            abi.encodeCall(NodusGovernor.setQuorumExcluded, (list)),
            "Duplicate entry"
        );
        _passAndQueue(p);
        vm.expectRevert(
            abi.encodeWithSelector(INodusGovernor.QuorumExcludedInvalid.selector, list[0])
        );
        _execute(p);
    }

    function test_Deployer_HasNoRoleOnTimelock() public view {
        assertFalse(timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), address(this)));
        assertFalse(timelock.hasRole(timelock.PROPOSER_ROLE(), address(this)));
        assertFalse(timelock.hasRole(timelock.CANCELLER_ROLE(), address(this)));
        assertFalse(timelock.hasRole(timelock.EXECUTOR_ROLE(), address(this)));
        // The timelock administers itself: only a passed proposal changes its roles.
        assertTrue(timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), address(timelock)));
        assertEq(adminGrants.length, 2); // itself, and the deployer, who renounced
        assertEq(adminGrants[0], address(timelock));
        assertEq(adminGrants[1], address(this));
    }

    function test_Governor_IsOnlyProposerAndCanceller() public view {
        assertEq(proposerGrants.length, 1);
        assertEq(proposerGrants[0], address(governor));
        assertEq(cancellerGrants.length, 1);
        assertEq(cancellerGrants[0], address(governor));
        assertTrue(timelock.hasRole(timelock.PROPOSER_ROLE(), address(governor)));
        // Anyone may execute a scheduled, ready operation.
        assertTrue(timelock.hasRole(timelock.EXECUTOR_ROLE(), address(0)));
    }

    function test_RevertWhen_DeployerSchedulesOnTimelock() public {
        bytes memory data = abi.encodeCall(SubscriptionManager.setPrice, (1 ether));
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector,
                address(this),
                timelock.PROPOSER_ROLE()
            )
        );
        timelock.schedule(address(subscriptions), 0, data, bytes32(0), bytes32(0), 30);
    }

    function test_RevertWhen_HolderSchedulesOnTimelock() public {
        bytes memory data = abi.encodeCall(SubscriptionManager.setPrice, (1 ether));
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector,
                alice,
                timelock.PROPOSER_ROLE()
            )
        );
        vm.prank(alice);
        timelock.schedule(address(subscriptions), 0, data, bytes32(0), bytes32(0), 30);
    }

    function test_RevertWhen_SetPriceNotCalledByTimelock() public {
        address[5] memory callers = [address(this), alice, address(governor), oracle, bob];
        for (uint256 i = 0; i < callers.length; i++) {
            vm.expectRevert(
                abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, callers[i])
            );
            vm.prank(callers[i]);
            subscriptions.setPrice(12 ether);
        }
        assertEq(subscriptions.owner(), address(timelock));
        assertEq(subscriptions.pricePerPeriod(), 10 ether);
    }

    // ------------------------------------------------------------------ the full flow

    function test_Dao_SetsPriceThroughFullFlow() public {
        Proposal memory p = _setPriceProposal();
        uint256 id = _submit(alice, p);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Pending));
        assertEq(governor.proposalSnapshot(id), block.timestamp + 1);

        _toVoting(id);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Active));
        vm.expectEmit(address(governor));
        emit IGovernor.VoteCast(alice, id, FOR, HOLDER_VOTES, "");
        _vote(alice, id, FOR);
        _vote(bob, id, FOR);
        _vote(carol, id, AGAINST);
        (uint256 against, uint256 forVotes, uint256 abstain) = governor.proposalVotes(id);
        assertEq(forVotes, 2 * HOLDER_VOTES);
        assertEq(against, HOLDER_VOTES);
        assertEq(abstain, 0);

        _toDeadlinePassed(id);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Succeeded));

        _queue(p);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Queued));
        assertEq(governor.proposalEta(id), block.timestamp + 30);

        vm.warp(governor.proposalEta(id));
        vm.expectEmit(address(subscriptions));
        emit SubscriptionManager.PriceChanged(10 ether, 12 ether);
        _execute(p);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Executed));
        assertEq(subscriptions.pricePerPeriod(), 12 ether);
    }

    function test_Dao_NextSubscriptionPaysNewPrice() public {
        _pass(_setPriceProposal());

        vm.startPrank(alice);
        token.approve(address(subscriptions), type(uint256).max);
        uint256 before = token.balanceOf(alice);
        subscriptions.subscribe(alice, 1, 12 ether);
        assertEq(before - token.balanceOf(alice), 12 ether);
        subscriptions.subscribe(alice, 3, 12 ether);
        assertEq(before - token.balanceOf(alice), 48 ether);
        vm.stopPrank();
        assertEq(subscriptions.expiresAt(alice), block.timestamp + 4 * 30 days);
    }

    function test_RevertWhen_SubscriberCapsBelowNewPrice() public {
        _pass(_setPriceProposal());
        vm.startPrank(alice);
        token.approve(address(subscriptions), type(uint256).max);
        vm.expectRevert(
            abi.encodeWithSelector(SubscriptionManager.PriceAboveMax.selector, 12 ether, 10 ether)
        );
        subscriptions.subscribe(alice, 1, 10 ether);
        vm.stopPrank();
    }

    function test_RevertWhen_VoteBeforeVotingDelay() public {
        uint256 id = _submit(alice, _setPriceProposal());
        vm.expectRevert(
            abi.encodeWithSelector(
                IGovernor.GovernorUnexpectedProposalState.selector,
                id,
                IGovernor.ProposalState.Pending,
                _stateBit(IGovernor.ProposalState.Active)
            )
        );
        _vote(alice, id, FOR);
    }

    function test_RevertWhen_ExecuteBeforeTimelockDelay() public {
        Proposal memory p = _setPriceProposal();
        uint256 id = _submit(alice, p);
        _toVoting(id);
        _vote(alice, id, FOR);
        _toDeadlinePassed(id);
        _queue(p);
        vm.warp(governor.proposalEta(id) - 1);

        bytes32 salt = bytes20(address(governor)) ^ _descriptionHash(p);
        bytes32 operation = timelock.hashOperationBatch(p.targets, p.values, p.calldatas, 0, salt);
        vm.expectRevert(
            abi.encodeWithSelector(
                TimelockController.TimelockUnexpectedOperationState.selector,
                operation,
                bytes32(uint256(1) << uint8(TimelockController.OperationState.Ready))
            )
        );
        _execute(p);
    }

    // ------------------------------------------------------------------ quorum and snapshots

    function test_Proposal_DefeatedWithoutQuorum() public {
        // alice keeps 15,000 NDS of votes: below the 20,000 quorum, and she alone votes.
        vm.prank(alice);
        assertTrue(token.transfer(bob, 85_000 ether));
        vm.warp(block.timestamp + 1);
        Proposal memory p = _setPriceProposal();
        uint256 id = _submit(alice, p);
        _toVoting(id);
        _vote(alice, id, FOR);
        _toDeadlinePassed(id);

        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Defeated));
        vm.expectRevert(
            abi.encodeWithSelector(
                IGovernor.GovernorUnexpectedProposalState.selector,
                id,
                IGovernor.ProposalState.Defeated,
                _stateBit(IGovernor.ProposalState.Succeeded)
            )
        );
        _queue(p);
    }

    function test_Proposal_DefeatedWhenMajorityAgainst() public {
        uint256 id = _submit(alice, _setPriceProposal());
        _toVoting(id);
        _vote(alice, id, FOR);
        _vote(bob, id, FOR);
        _vote(carol, id, AGAINST);
        _vote(operator1, id, AGAINST);
        _vote(operator2, id, ABSTAIN); // counts for the quorum, not for the majority
        _toDeadlinePassed(id);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Defeated));
    }

    function test_FlashLoanedVotesDoNotCount() public {
        // alice proposes; a borrower gets four holders' 400,000 NDS only after the snapshot (a
        // flash loan stands in for any lender), delegates and votes: weight zero.
        uint256 id = _submit(alice, _setPriceProposal());
        _toVoting(id);

        address borrower = makeAddr("flash-borrower");
        address[4] memory lenders = [bob, carol, operator1, operator2];
        for (uint256 i = 0; i < lenders.length; i++) {
            vm.prank(lenders[i]);
            assertTrue(token.transfer(borrower, HOLDER_VOTES));
        }
        vm.prank(borrower);
        token.delegate(borrower);
        assertEq(token.getVotes(borrower), 4 * HOLDER_VOTES);

        vm.expectEmit(address(governor));
        emit IGovernor.VoteCast(borrower, id, FOR, 0, "");
        _vote(borrower, id, FOR);
        (, uint256 forVotes,) = governor.proposalVotes(id);
        assertEq(forVotes, 0);

        _toDeadlinePassed(id);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Defeated));
    }

    function test_TokensMovedAfterSnapshotCannotVoteTwice() public {
        uint256 id = _submit(alice, _setPriceProposal());
        _toVoting(id);

        address accomplice = makeAddr("accomplice");
        vm.prank(alice);
        assertTrue(token.transfer(accomplice, HOLDER_VOTES));
        vm.prank(accomplice);
        token.delegate(accomplice);

        _vote(alice, id, AGAINST); // alice's snapshot votes still count once
        _vote(accomplice, id, FOR);
        (uint256 against, uint256 forVotes,) = governor.proposalVotes(id);
        assertEq(against, HOLDER_VOTES);
        assertEq(forVotes, 0);
    }

    // ------------------------------------------------------------------ governance over rewards

    function test_Dao_RevokesBadRootWithinRaisedWindow() public {
        // 1. Governance raises the unbonding period to 30 days, then the challenge window to a
        // day (longer than a proposal takes here), in one proposal: the order keeps both
        // orderings true after each call.
        Proposal memory raise;
        raise.targets = new address[](2);
        (raise.targets[0], raise.targets[1]) = (address(registry), address(rewards));
        raise.values = new uint256[](2);
        raise.calldatas = new bytes[](2);
        raise.calldatas[0] = abi.encodeCall(NodeRegistry.setUnbondingPeriod, (30 days));
        raise.calldatas[1] = abi.encodeCall(RewardDistributor.setChallengePeriod, (1 days));
        raise.description = "Unbonding 30 days, challenge window one day";
        _pass(raise);
        assertEq(rewards.challengePeriod(), 1 days);

        // 2. The oracle proposes a bad root: all of the budget to a single account.
        address thief = makeAddr("thief");
        (bytes32 bad, bytes32[][] memory badProofs) = _tree(_addrs(thief), _uints(BUDGET));
        _propose(1, bad, BUDGET);
        uint64 validAt = rewards.pendingRoot().validAt;

        // 3. A holder's revoke proposal passes and executes inside the window.
        _pass(
            _proposal(
                address(rewards),
                abi.encodeCall(RewardDistributor.revokeRoot, ()),
                "Revoke the epoch 1 root"
            )
        );
        assertLt(block.timestamp, validAt);
        assertEq(rewards.currentEpoch(), 1);
        assertEq(rewards.rootEpoch(), 0);

        vm.warp(validAt);
        vm.expectRevert(RewardDistributor.NoPendingRoot.selector);
        rewards.acceptRoot();
        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        rewards.claim(thief, BUDGET, badProofs[0]);

        // 4. The next epoch proposes a correct root, accepted after its window.
        (bytes32 good, bytes32[][] memory proofs) =
            _tree(_addrs(operator1, operator2), _uints(600 ether, 400 ether));
        _propose(2, good, 1_000 ether);
        _waitAndAccept();
        assertEq(rewards.currentRoot(), good);
        assertEq(rewards.rootEpoch(), 2);
        assertEq(rewards.claim(operator1, 600 ether, proofs[0]), 600 ether);
        assertEq(token.balanceOf(thief), 0);
    }

    function test_Dao_RotatesOracle() public {
        address newOracle = makeAddr("new-oracle");
        bytes32 role = rewards.ORACLE_ROLE();
        Proposal memory p;
        p.targets = new address[](2);
        (p.targets[0], p.targets[1]) = (address(rewards), address(rewards));
        p.values = new uint256[](2);
        p.calldatas = new bytes[](2);
        p.calldatas[0] = abi.encodeCall(IAccessControl.grantRole, (role, newOracle));
        p.calldatas[1] = abi.encodeCall(IAccessControl.revokeRole, (role, oracle));
        p.description = "Rotate the oracle key";
        _pass(p);

        assertTrue(rewards.hasRole(role, newOracle));
        assertFalse(rewards.hasRole(role, oracle));
    }

    function test_Dao_SetsEpochBudget() public {
        _pass(
            _proposal(
                address(rewards),
                abi.encodeCall(RewardDistributor.setEpochBudget, (25_000 ether)),
                "Epoch budget: 25,000 NDS"
            )
        );
        assertEq(rewards.epochBudget(), 25_000 ether);
    }
}

/// @notice A governance proposal names the root it revokes (revokeEpoch(epoch, root)), so it can
/// never settle another root proposed while the vote ran.
contract GovernanceRevokeTargetTest is GovernanceTestBase {
    function setUp() public override {
        super.setUp();
        _delegateEach(_addrs(alice, bob, carol));
    }

    /// @notice Holders vote to revoke the bad epoch 1 root, but the proposal is written late
    /// (near the end of the window): epoch 1 is accepted and the honest epoch 2 root is pending
    /// when the proposal executes. The targeted revoke reverts and leaves epoch 2 alone.
    function test_RevokeProposalOnlyHitsTheRootVotedOn() public {
        address thief = makeAddr("thief");
        (bytes32 bad,) = _tree(_addrs(thief), _uints(BUDGET));
        _propose(1, bad, BUDGET);
        uint64 validAt = rewards.pendingRoot().validAt;
        vm.warp(validAt - 1); // the proposal comes one second before the window closes

        Proposal memory p = _proposal(
            address(rewards),
            abi.encodeCall(RewardDistributor.revokeEpoch, (uint64(1), bad)),
            "Revoke the bad epoch 1 root"
        );
        uint256 id = _submit(alice, p);

        // Meanwhile anyone accepts epoch 1 and the oracle proposes epoch 2.
        vm.warp(validAt);
        rewards.acceptRoot();
        (bytes32 good,) = _tree(_addrs(operator1), _uints(BUDGET + 1_000 ether));
        _propose(2, good, BUDGET + 1_000 ether);

        _toVoting(id);
        _voteAll(id, FOR);
        _toDeadlinePassed(id);
        _queue(p);
        vm.warp(governor.proposalEta(id));
        // The root voted on is no longer pending: execution reverts and epoch 2 stays.
        vm.expectRevert(
            abi.encodeWithSelector(RewardDistributor.NotPending.selector, uint64(1), bad)
        );
        governor.execute(p.targets, p.values, p.calldatas, _descriptionHash(p));

        assertEq(rewards.pendingRoot().root, good, "the honest epoch 2 root was revoked");
        vm.warp(rewards.pendingRoot().validAt);
        rewards.acceptRoot();
        assertEq(rewards.currentRoot(), good);
    }
}

/// @notice Issue 8's guardian and slash findings, acted out through real proposals: holders
/// delegate and vote as themselves, and the timelock acts only when a proposal executes.
contract GovernanceSafetyTest is GovernanceTestBase {
    uint256 internal constant STAKE = 1_000 ether;
    bytes32 internal constant REASON = keccak256("epoch 7: fabricated bandwidth");

    function setUp() public override {
        super.setUp();
        _delegateEach(_addrs(alice, bob, carol));
    }

    function _stakedNode() internal returns (bytes32 nodeId) {
        vm.startPrank(operator1);
        token.approve(address(registry), STAKE);
        nodeId = registry.register(keccak256("node-1"), STAKE, makeAddr("agent"), "");
        vm.stopPrank();
    }

    function _stakeOf(bytes32 nodeId) internal view returns (uint256 stake) {
        (,, stake,,,) = registry.getNode(nodeId);
    }

    function _slashes(bytes32 nodeId, uint256[] memory amounts, string memory description)
        internal
        view
        returns (Proposal memory p)
    {
        p.targets = new address[](amounts.length);
        p.values = new uint256[](amounts.length);
        p.calldatas = new bytes[](amounts.length);
        for (uint256 i = 0; i < amounts.length; i++) {
            p.targets[i] = address(registry);
            p.calldatas[i] = abi.encodeCall(NodeRegistry.slash, (nodeId, amounts[i], REASON));
        }
        p.description = description;
    }

    /// @notice Three slashes in one proposal used to take 87.5% (half, then half of the rest,
    /// twice). The cap holds per unbonding window, so such a proposal cannot execute at all; one
    /// half-slash passes, and a second proposal within the same window takes nothing more.
    function test_Dao_CannotSlashPastTheWindowCap() public {
        bytes32 node = _stakedNode();

        Proposal memory three =
            _slashes(node, _uints(STAKE / 2, STAKE / 4, STAKE / 8), "Slash node 1 three times");
        _passAndQueue(three);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.SlashTooLarge.selector, STAKE / 4, 0));
        _execute(three);
        assertEq(_stakeOf(node), STAKE, "a reverted proposal took stake");

        _pass(_slashes(node, _uints(STAKE / 2), "Slash node 1 by half"));
        assertEq(_stakeOf(node), STAKE / 2);

        Proposal memory again = _slashes(node, _uints(1 ether), "Slash node 1 again");
        _passAndQueue(again);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.SlashTooLarge.selector, 1 ether, 0));
        _execute(again);
        assertEq(_stakeOf(node), STAKE / 2, "50% per window, not per proposal");
        assertEq(token.balanceOf(address(registry)), STAKE / 2);
    }

    /// @notice Only the DAO replaces the guardian key: a passed proposal revokes the old key's
    /// role and grants a new multisig's; the old key can no longer revoke, the new one can.
    function test_Dao_ReplacesTheGuardian() public {
        address council = makeAddr("new-guardian-multisig");
        bytes32 role = rewards.GUARDIAN_ROLE();
        Proposal memory p;
        p.description = "Replace the guardian key with the council multisig";
        p.targets = _addrs(address(rewards), address(rewards));
        p.values = new uint256[](2);
        p.calldatas = new bytes[](2);
        p.calldatas[0] = abi.encodeCall(IAccessControl.revokeRole, (role, guardian));
        p.calldatas[1] = abi.encodeCall(IAccessControl.grantRole, (role, council));
        _pass(p);

        _propose(1, bytes32(uint256(1)), 1 ether);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, guardian, role
            )
        );
        vm.prank(guardian);
        rewards.revokeEpoch(1, bytes32(uint256(1)));
        vm.prank(council);
        rewards.revokeEpoch(1, bytes32(uint256(1)));
        assertEq(rewards.currentEpoch(), 1);
    }
}
