// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "forge-std/Vm.sol";
import {console} from "forge-std/console.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IGovernor} from "@openzeppelin/contracts/governance/IGovernor.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";
import {SubscriptionManager} from "../src/SubscriptionManager.sol";
import {NodusDeployment} from "../script/NodusDeployment.sol";
import {RewardTestBase} from "./RewardDistributor.t.sol";

/// @notice Proposal plumbing shared by the governance tests: a holder with enough delegated
/// votes for the 4% quorum, and the propose / vote / queue / execute steps on the timestamp clock.
abstract contract GovernanceTestBase is RewardTestBase {
    /// @notice More than the 4% quorum (40,000,000 NDS) of the 1e9 supply.
    uint256 internal constant WHALE_VOTES = 50_000_000 ether;
    uint8 internal constant AGAINST = 0;
    uint8 internal constant FOR = 1;

    address internal whale = makeAddr("whale");

    struct Proposal {
        address[] targets;
        uint256[] values;
        bytes[] calldatas;
        string description;
    }

    /// @notice The treasury (timelock) sends `amount` NDS to `voter`, who self-delegates; one
    /// second passes so the checkpoint is in the past. (`deal` would break ERC20Votes
    /// checkpoints.)
    function _giveVotes(address voter, uint256 amount) internal {
        vm.prank(address(timelock));
        assertTrue(token.transfer(voter, amount));
        vm.prank(voter);
        token.delegate(voter);
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

    function _toDeadlinePassed(uint256 id) internal {
        vm.warp(governor.proposalDeadline(id) + 1);
    }

    function _queue(Proposal memory p) internal {
        governor.queue(p.targets, p.values, p.calldatas, _descriptionHash(p));
    }

    function _execute(Proposal memory p) internal {
        governor.execute(p.targets, p.values, p.calldatas, _descriptionHash(p));
    }

    /// @notice The whole flow, as fast as the delays allow, with the whale voting For.
    function _pass(Proposal memory p) internal returns (uint256 id) {
        id = _submit(whale, p);
        _toVoting(id);
        _vote(whale, id, FOR);
        _toDeadlinePassed(id);
        _queue(p);
        vm.warp(governor.proposalEta(id));
        _execute(p);
    }

    function _stateBit(IGovernor.ProposalState s) internal pure returns (bytes32) {
        return bytes32(uint256(1) << uint8(s));
    }
}

/// @notice The DAO on the local deployment (voting delay 1 s, voting period 60 s, timelock
/// delay 30 s, quorum 4%, challenge window 120 s).
contract GovernanceTest is GovernanceTestBase {
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
        _giveVotes(whale, WHALE_VOTES);
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

    function test_Quorum_IsFourPercentOfSupply() public view {
        assertEq(governor.quorum(block.timestamp - 1), 40_000_000 ether);
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
                whale,
                timelock.PROPOSER_ROLE()
            )
        );
        vm.prank(whale);
        timelock.schedule(address(subscriptions), 0, data, bytes32(0), bytes32(0), 30);
    }

    function test_RevertWhen_SetPriceNotCalledByTimelock() public {
        address[5] memory callers = [address(this), alice, address(governor), oracle, whale];
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
        uint256 id = _submit(whale, p);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Pending));
        assertEq(governor.proposalSnapshot(id), block.timestamp + 1);

        _toVoting(id);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Active));
        vm.expectEmit(address(governor));
        emit IGovernor.VoteCast(whale, id, FOR, WHALE_VOTES, "");
        _vote(whale, id, FOR);
        (uint256 against, uint256 forVotes, uint256 abstain) = governor.proposalVotes(id);
        assertEq(forVotes, WHALE_VOTES);
        assertEq(against + abstain, 0);

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
        uint256 id = _submit(whale, _setPriceProposal());
        vm.expectRevert(
            abi.encodeWithSelector(
                IGovernor.GovernorUnexpectedProposalState.selector,
                id,
                IGovernor.ProposalState.Pending,
                _stateBit(IGovernor.ProposalState.Active)
            )
        );
        _vote(whale, id, FOR);
    }

    function test_RevertWhen_ExecuteBeforeTimelockDelay() public {
        Proposal memory p = _setPriceProposal();
        uint256 id = _submit(whale, p);
        _toVoting(id);
        _vote(whale, id, FOR);
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
        vm.prank(alice);
        token.delegate(alice); // 100,000 NDS of votes: far below 40,000,000
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
        address other = makeAddr("other-whale");
        _giveVotes(other, WHALE_VOTES + 1);
        uint256 id = _submit(whale, _setPriceProposal());
        _toVoting(id);
        _vote(whale, id, FOR);
        _vote(other, id, AGAINST);
        _toDeadlinePassed(id);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Defeated));
    }

    function test_FlashLoanedVotesDoNotCount() public {
        // alice proposes; a borrower gets 50,000,000 NDS only after the snapshot (a flash loan
        // from the treasury stands in for any lender), delegates and votes: weight zero.
        vm.prank(alice);
        token.delegate(alice);
        vm.warp(block.timestamp + 1);
        uint256 id = _submit(alice, _setPriceProposal());
        _toVoting(id);

        address borrower = makeAddr("flash-borrower");
        vm.prank(address(timelock));
        assertTrue(token.transfer(borrower, WHALE_VOTES));
        vm.prank(borrower);
        token.delegate(borrower);
        assertEq(token.getVotes(borrower), WHALE_VOTES);

        vm.expectEmit(address(governor));
        emit IGovernor.VoteCast(borrower, id, FOR, 0, "");
        _vote(borrower, id, FOR);
        (, uint256 forVotes,) = governor.proposalVotes(id);
        assertEq(forVotes, 0);

        _toDeadlinePassed(id);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Defeated));
    }

    function test_TokensMovedAfterSnapshotCannotVoteTwice() public {
        uint256 id = _submit(whale, _setPriceProposal());
        _toVoting(id);

        address accomplice = makeAddr("accomplice");
        vm.prank(whale);
        assertTrue(token.transfer(accomplice, WHALE_VOTES));
        vm.prank(accomplice);
        token.delegate(accomplice);

        _vote(whale, id, AGAINST); // the whale's snapshot votes still count once
        _vote(accomplice, id, FOR);
        (uint256 against, uint256 forVotes,) = governor.proposalVotes(id);
        assertEq(against, WHALE_VOTES);
        assertEq(forVotes, 0);
    }

    // ------------------------------------------------------------------ governance over rewards

    function test_Dao_RevokesBadRootWithinRaisedWindow() public {
        // 1. Governance raises the challenge window to a day: longer than a proposal takes here.
        _pass(
            _proposal(
                address(rewards),
                abi.encodeCall(RewardDistributor.setChallengePeriod, (1 days)),
                "Challenge window: one day"
            )
        );
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

/// @notice The DAO with the production delays of contracts/script/Deploy.s.sol (any chain but
/// 31337): voting delay 1 day, voting period 3 days, timelock delay 1 day, challenge window
/// 6 days. The pool is funded from the treasury through `fund` (production deploys it empty).
contract GovernanceProductionParamsTest is GovernanceTestBase {
    function setUp() public override {
        vm.warp(1_750_000_000);
        vm.deal(address(this), 1_000 ether);
        address[] memory dev = new address[](5);
        (dev[0], dev[1], dev[2], dev[3], dev[4]) = (alice, bob, carol, operator1, operator2);
        params = NodusDeployment.localParams(address(this), oracle, dev);
        params.guardian = guardian;
        // The non-local overrides of Deploy.s.sol.
        params.unbondingPeriod = 14 days;
        params.challengePeriod = 6 days;
        params.votingDelay = 1 days;
        params.votingPeriod = 3 days;
        params.timelockDelay = 1 days;
        params.proposalThreshold = 100_000 ether;
        params.rewardPoolFunding = 0;
        params.swapNds = 0;
        params.swapEth = 0;
        NodusDeployment.Deployment memory d = NodusDeployment.deploy(params);
        (token, timelock, governor, rewards, subscriptions, registry, swap) =
        (d.token, d.timelock, d.governor, d.rewards, d.subscriptions, d.registry, d.swap);

        vm.startPrank(address(timelock)); // a treasury grant to the empty pool
        token.approve(address(rewards), POOL);
        rewards.fund(POOL);
        vm.stopPrank();
        _giveVotes(whale, WHALE_VOTES);
    }

    /// @notice The guardian that may revoke a bad root is the timelock, which acts only through
    /// a passed proposal (votingDelay + votingPeriod + timelockDelay = 5 days); the deployment
    /// requires the challenge window (6 days) to outlast that, so the revoke lands in time.
    function test_GuardianRevokesBadRootInTime_ProductionParams() public {
        address thief = makeAddr("thief");
        (bytes32 bad,) = _tree(_addrs(thief), _uints(BUDGET));
        _propose(1, bad, BUDGET);
        uint64 validAt = rewards.pendingRoot().validAt;

        // Governance reacts in the very same second the bad root appears.
        Proposal memory p = _proposal(
            address(rewards),
            abi.encodeCall(RewardDistributor.revokeRoot, ()),
            "Revoke the bad epoch 1 root"
        );
        uint256 id = _submit(whale, p);
        _toVoting(id);
        _vote(whale, id, FOR);
        _toDeadlinePassed(id);
        _queue(p);
        uint256 eta = governor.proposalEta(id);
        console.log(
            "revoke executable after %s s; root acceptable after %s s",
            eta - (validAt - 6 days),
            uint256(6 days)
        );

        assertLt(eta, validAt, "governance cannot revoke before anyone may accept the root");
        vm.warp(eta);
        _execute(p);
        assertEq(rewards.rootEpoch(), 0);
    }
}

/// @notice A governance proposal names the root it revokes (revokeEpoch(epoch, root)), so it can
/// never settle another root proposed while the vote ran.
contract GovernanceRevokeTargetTest is GovernanceTestBase {
    function setUp() public override {
        super.setUp();
        _giveVotes(whale, WHALE_VOTES);
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
        uint256 id = _submit(whale, p);

        // Meanwhile anyone accepts epoch 1 and the oracle proposes epoch 2.
        vm.warp(validAt);
        rewards.acceptRoot();
        (bytes32 good,) = _tree(_addrs(operator1), _uints(BUDGET + 1_000 ether));
        _propose(2, good, BUDGET + 1_000 ether);

        _toVoting(id);
        _vote(whale, id, FOR);
        _toDeadlinePassed(id);
        _queue(p);
        vm.warp(governor.proposalEta(id));
        // The root voted on is no longer pending: execution reverts and epoch 2 stays.
        vm.expectRevert();
        governor.execute(p.targets, p.values, p.calldatas, _descriptionHash(p));

        assertEq(rewards.pendingRoot().root, good, "the honest epoch 2 root was revoked");
        vm.warp(rewards.pendingRoot().validAt);
        rewards.acceptRoot();
        assertEq(rewards.currentRoot(), good);
    }
}
