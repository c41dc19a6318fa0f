// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {console} from "forge-std/console.sol";
import {IGovernor} from "@openzeppelin/contracts/governance/IGovernor.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {GovernorSettings} from "@openzeppelin/contracts/governance/extensions/GovernorSettings.sol";
import {NodeRegistry} from "../src/NodeRegistry.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";
import {SubscriptionManager} from "../src/SubscriptionManager.sol";
import {
    IChallengeWindow,
    IGovernorClocks,
    ITimelockDelay,
    ITimingGuard,
    IUnbondingPeriod
} from "../src/interfaces/ITimingGuard.sol";
import {NodusDeployment} from "../script/NodusDeployment.sol";
import {GovernanceTestBase} from "./Governance.t.sol";

/// @notice The DAO as it ships on any chain but 31337 (NodusDeployment.productionParams: voting
/// delay 1 day, voting period 2 days, timelock 1 day, challenge window 6 days, unbonding 14 days,
/// proposal threshold 100,000 NDS), with the circulating 350,000,000 NDS spread unevenly over 120
/// holders. Every vote is a holder's own transaction; the only other cheatcodes are time warps.
contract GovernanceProductionTest is GovernanceTestBase {
    uint256 internal constant HOLDERS = 120;
    uint256 internal constant CIRCULATING = 350_000_000 ether;
    uint256 internal constant THRESHOLD = 100_000 ether;
    uint256 internal constant QUORUM = CIRCULATING * 4 / 100; // 14,000,000 NDS
    /// @notice Holders 0..39 vote themselves; 40..59 delegate to holder 0; 60..119 stay idle.
    uint256 internal constant SELF_DELEGATING = 40;
    uint256 internal constant DELEGATING_TO_FIRST = 20;

    address[] internal holders;
    uint256[] internal holderNds;

    function setUp() public override {
        vm.warp(1_750_000_000);
        _makeHolders();
        params = NodusDeployment.productionParams(address(this), oracle, holders, holderNds);
        params.guardian = guardian;
        _adopt(NodusDeployment.deploy(params));

        address[] memory selfDelegating = new address[](SELF_DELEGATING);
        for (uint256 i = 0; i < SELF_DELEGATING; i++) {
            selfDelegating[i] = holders[i];
        }
        for (uint256 i = SELF_DELEGATING; i < SELF_DELEGATING + DELEGATING_TO_FIRST; i++) {
            _delegate(holders[i], holders[0]);
        }
        _delegateEach(selfDelegating);
    }

    /// @notice Uneven shares: weights 1..97 in a scrambled order, scaled to the circulating supply
    /// (the last holder takes the rounding remainder), from about 60,000 to 5,800,000 NDS.
    function _makeHolders() internal {
        uint256[] memory weights = new uint256[](HOLDERS);
        uint256 sum = 0;
        for (uint256 i = 0; i < HOLDERS; i++) {
            weights[i] = 1 + (i * 7919 + 13) % 97;
            sum += weights[i];
        }
        uint256 given = 0;
        for (uint256 i = 0; i < HOLDERS; i++) {
            holders.push(makeAddr(string.concat("holder-", vm.toString(i))));
            uint256 amount = i == HOLDERS - 1 ? CIRCULATING - given : CIRCULATING * weights[i] / sum;
            holderNds.push(amount);
            given += amount;
        }
    }

    function _setPriceProposal() internal view returns (Proposal memory) {
        return _proposal(
            address(subscriptions),
            abi.encodeCall(SubscriptionManager.setPrice, (12 ether)),
            "Raise the monthly price to 12 NDS"
        );
    }

    // ------------------------------------------------------------------ distribution

    function test_Production_DistributionAndQuorum() public view {
        assertEq(token.totalSupply(), 1_000_000_000 ether);
        assertEq(token.balanceOf(address(rewards)), 150_000_000 ether);
        assertEq(token.balanceOf(address(timelock)), 500_000_000 ether);
        assertEq(token.balanceOf(address(this)), 0);
        uint256 sum = 0;
        for (uint256 i = 0; i < HOLDERS; i++) {
            assertEq(token.balanceOf(holders[i]), holderNds[i]);
            sum += holderNds[i];
        }
        assertEq(sum, CIRCULATING);
        assertEq(governor.votableSupply(), CIRCULATING);
        assertEq(governor.quorum(block.timestamp), QUORUM);
        assertEq(governor.proposalThreshold(), THRESHOLD);
        assertEq(governor.votingDelay(), 1 days);
        assertEq(governor.votingPeriod(), 2 days);
        assertEq(timelock.getMinDelay(), 1 days);
        assertEq(rewards.challengePeriod(), 6 days);
        assertEq(registry.unbondingPeriod(), 14 days);
        // No single holder reaches the quorum alone.
        for (uint256 i = 0; i < HOLDERS; i++) {
            assertLt(holderNds[i], QUORUM);
        }
    }

    // ------------------------------------------------------------------ the full flow

    /// @notice Holder 0 (with 20 delegations) proposes; 40 holders vote, one in five against;
    /// the proposal passes, waits out the timelock and changes the price.
    function test_Production_HoldersSetPriceThroughFullFlow() public {
        Proposal memory p = _setPriceProposal();

        // A holder below the threshold cannot propose.
        address small = holders[HOLDERS - 2];
        uint256 smallVotes = token.getVotes(small);
        assertLt(smallVotes, THRESHOLD);
        vm.expectRevert(
            abi.encodeWithSelector(
                IGovernor.GovernorInsufficientProposerVotes.selector, small, smallVotes, THRESHOLD
            )
        );
        vm.prank(small);
        governor.propose(p.targets, p.values, p.calldatas, p.description);

        uint256 id = _submit(holders[0], p);
        assertEq(governor.proposalQuorum(id), QUORUM);
        _toVoting(id);
        uint256 expectFor = 0;
        uint256 expectAgainst = 0;
        for (uint256 i = 0; i < voters.length; i++) {
            uint8 support = i % 5 == 4 ? AGAINST : FOR;
            uint256 weight = token.getPastVotes(voters[i], governor.proposalSnapshot(id));
            if (support == FOR) expectFor += weight;
            else expectAgainst += weight;
            _vote(voters[i], id, support);
        }
        (uint256 against, uint256 forVotes, uint256 abstain) = governor.proposalVotes(id);
        assertEq(forVotes, expectFor);
        assertEq(against, expectAgainst);
        assertEq(abstain, 0);
        assertGe(forVotes, QUORUM);
        console.log("for %s NDS, against %s NDS", forVotes / 1 ether, against / 1 ether);

        _toDeadlinePassed(id);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Succeeded));
        _queue(p);
        assertEq(governor.proposalEta(id), block.timestamp + 1 days);
        vm.warp(governor.proposalEta(id));
        vm.expectEmit(address(subscriptions));
        emit SubscriptionManager.PriceChanged(10 ether, 12 ether);
        _execute(p);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Executed));
        assertEq(subscriptions.pricePerPeriod(), 12 ether);
    }

    /// @notice Five mid-sized holders agree, but they hold less than 4% of the circulating
    /// supply: the proposal is defeated.
    function test_Production_DefeatedWhenTooFewHoldersVote() public {
        Proposal memory p = _setPriceProposal();
        uint256 id = _submit(holders[1], p);
        _toVoting(id);
        for (uint256 i = 1; i <= 5; i++) {
            _vote(holders[i], id, FOR);
        }
        (, uint256 forVotes,) = governor.proposalVotes(id);
        assertLt(forVotes, QUORUM);
        _toDeadlinePassed(id);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Defeated));
    }

    /// @notice The guardian that may revoke a bad root is the timelock, which acts only through
    /// a passed proposal (votingDelay + votingPeriod + timelockDelay = 4 days); the challenge
    /// window (6 days) outlasts that by 2 days, so the revoke lands in time.
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
        uint256 id = _passAndQueue(p);
        uint256 eta = governor.proposalEta(id);
        assertEq(validAt - eta, 2 days - 1, "a 2-day margin (minus the 1 s past the deadline)");
        _execute(p);
        assertEq(rewards.rootEpoch(), 0);
        assertEq(rewards.currentEpoch(), 1);
    }

    // ------------------------------------------------------------------ timing orderings

    /// @notice A passed proposal whose call breaks an ordering reverts on execution with the
    /// guard's error and changes nothing.
    function _expectExecutionReverts(address target, bytes memory data, bytes memory err) internal {
        Proposal memory p = _proposal(target, data, string(abi.encode(target, data)));
        _passAndQueue(p);
        vm.expectRevert(err);
        _execute(p);
    }

    function _challengeTooShort(uint256 window, uint256 round)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodeWithSelector(ITimingGuard.ChallengeWindowTooShort.selector, window, round);
    }

    function _unbondingTooShort(uint256 unbonding, uint256 path)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodeWithSelector(ITimingGuard.UnbondingTooShort.selector, unbonding, path);
    }

    function test_RevertWhen_ChallengeWindowSetToGovernanceRound() public {
        _expectExecutionReverts(
            address(rewards),
            abi.encodeCall(RewardDistributor.setChallengePeriod, (4 days)),
            _challengeTooShort(4 days, 4 days)
        );
        _expectExecutionReverts(
            address(rewards),
            abi.encodeCall(RewardDistributor.setChallengePeriod, (1)),
            _challengeTooShort(1, 4 days)
        );
        assertEq(rewards.challengePeriod(), 6 days);
    }

    function test_RevertWhen_ChallengeWindowOutgrowsUnbonding() public {
        _expectExecutionReverts(
            address(rewards),
            abi.encodeCall(RewardDistributor.setChallengePeriod, (10 days)),
            _unbondingTooShort(14 days, 14 days)
        );
        assertEq(rewards.challengePeriod(), 6 days);
    }

    function test_RevertWhen_UnbondingSetToWindowPlusRound() public {
        _expectExecutionReverts(
            address(registry),
            abi.encodeCall(NodeRegistry.setUnbondingPeriod, (10 days)),
            _unbondingTooShort(10 days, 10 days)
        );
        _expectExecutionReverts(
            address(registry),
            abi.encodeCall(NodeRegistry.setUnbondingPeriod, (1 hours)),
            _unbondingTooShort(1 hours, 10 days)
        );
        assertEq(registry.unbondingPeriod(), 14 days);
    }

    function test_RevertWhen_VotingDelayFillsTheWindow() public {
        _expectExecutionReverts(
            address(governor),
            abi.encodeCall(GovernorSettings.setVotingDelay, (3 days)),
            _challengeTooShort(6 days, 6 days)
        );
        assertEq(governor.votingDelay(), 1 days);
    }

    function test_RevertWhen_VotingPeriodFillsTheWindow() public {
        _expectExecutionReverts(
            address(governor),
            abi.encodeCall(GovernorSettings.setVotingPeriod, (4 days)),
            _challengeTooShort(6 days, 6 days)
        );
        assertEq(governor.votingPeriod(), 2 days);
    }

    function test_RevertWhen_TimelockDelayFillsTheWindow() public {
        _expectExecutionReverts(
            address(timelock),
            abi.encodeCall(TimelockController.updateDelay, (3 days)),
            _challengeTooShort(6 days, 6 days)
        );
        assertEq(timelock.getMinDelay(), 1 days);
    }

    /// @notice Each setter reads the others' current values: a longer window (7 days) passes,
    /// after which unbonding must exceed 11 days and a round must stay under 7 days.
    function test_Orderings_FollowTheCurrentValues() public {
        _pass(
            _proposal(
                address(rewards),
                abi.encodeCall(RewardDistributor.setChallengePeriod, (7 days)),
                "Challenge window: 7 days"
            )
        );
        assertEq(rewards.challengePeriod(), 7 days);
        _expectExecutionReverts(
            address(registry),
            abi.encodeCall(NodeRegistry.setUnbondingPeriod, (11 days)),
            _unbondingTooShort(11 days, 11 days)
        );
        _pass(
            _proposal(
                address(governor),
                abi.encodeCall(GovernorSettings.setVotingPeriod, (3 days)),
                "Voting period: 3 days"
            )
        );
        assertEq(governor.votingPeriod(), 3 days); // round 5 days < 7; unbonding 14 > 12
        _expectExecutionReverts(
            address(timelock),
            abi.encodeCall(TimelockController.updateDelay, (3 days)),
            _challengeTooShort(7 days, 7 days)
        );
        assertEq(timelock.getMinDelay(), 1 days);
    }

    // ------------------------------------------------------------------ deployment checks

    function deployExternal(NodusDeployment.Params memory p) external {
        NodusDeployment.deploy(p);
    }

    function test_RevertWhen_DeployedWithWindowNotOutlastingRound() public {
        NodusDeployment.Params memory p = params;
        p.challengePeriod = 4 days;
        vm.expectRevert(_challengeTooShort(4 days, 4 days));
        this.deployExternal(p);
    }

    function test_RevertWhen_DeployedWithUnbondingTooShort() public {
        NodusDeployment.Params memory p = params;
        p.unbondingPeriod = 10 days;
        vm.expectRevert(_unbondingTooShort(10 days, 10 days));
        this.deployExternal(p);
    }

    function test_RevertWhen_CirculatingSupplyCannotPropose() public {
        NodusDeployment.Params memory p = NodusDeployment.productionParams(
            address(this), oracle, _addrs(alice), _uints(THRESHOLD - 1)
        );
        p.guardian = guardian;
        vm.expectRevert(
            abi.encodeWithSelector(
                NodusDeployment.CirculatingBelowThreshold.selector, THRESHOLD - 1, THRESHOLD
            )
        );
        this.deployExternal(p);
    }

    function test_RevertWhen_GuardInitializedTwiceOrByStranger() public {
        (IGovernorClocks g, ITimelockDelay t, IChallengeWindow r, IUnbondingPeriod u) =
            (guard.governor(), guard.timelock(), guard.rewards(), guard.registry());
        assertEq(address(g), address(governor));
        vm.expectRevert(ITimingGuard.TimingGuardAlreadyInitialized.selector);
        guard.initialize(g, t, r, u);
        vm.expectRevert(
            abi.encodeWithSelector(ITimingGuard.TimingGuardUnauthorized.selector, alice)
        );
        vm.prank(alice);
        guard.initialize(g, t, r, u);
    }
}
