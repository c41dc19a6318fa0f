// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {console2} from "forge-std/console2.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {GovernorSettings} from "@openzeppelin/contracts/governance/extensions/GovernorSettings.sol";
import {NDSToken} from "../../src/NDSToken.sol";
import {NodeRegistry} from "../../src/NodeRegistry.sol";
import {NodusGovernor} from "../../src/NodusGovernor.sol";
import {RewardDistributor} from "../../src/RewardDistributor.sol";
import {SubscriptionManager} from "../../src/SubscriptionManager.sol";
import {NodusDeployment} from "../../script/NodusDeployment.sol";
import {NodusTestBase} from "../NodusTestBase.sol";

/// @notice Drives governance on the local deployment the way holders would: delegations,
/// transfers, subscriptions (NDS flowing into the protocol), proposals of price and timing
/// setters, votes, queueing and execution, with time passing. Every action is a holder's own
/// transaction; nothing acts as the timelock.
contract GovernanceHandler is CommonBase, StdCheats, StdUtils {
    NDSToken internal immutable token;
    NodusGovernor internal immutable governor;
    TimelockController internal immutable timelock;
    RewardDistributor internal immutable rewards;
    NodeRegistry internal immutable registry;
    SubscriptionManager internal immutable subscriptions;
    address internal immutable swap;

    address[] internal holders;

    struct Proposal {
        address[] targets;
        uint256[] values;
        bytes[] calldatas;
        bytes32 descriptionHash;
        uint256 id;
        uint256 expectedQuorum; // 4% of the votable supply the handler computed at creation
    }

    Proposal[] internal proposals;

    /// @dev The fuzzer's block timestamp is not carried between calls: each call warps here first.
    uint256 public currentTime;

    // Ghosts.
    bool public executedWithoutQuorum;
    bool public quorumMismatch;
    uint256 public proposed;
    uint256 public votes;
    uint256 public queued;
    uint256 public executed;
    uint256 public executionsReverted;
    uint256 public warps;

    constructor(NodusTestBase.Contracts memory c, address[] memory holders_) {
        (token, governor, timelock, rewards) = (c.token, c.governor, c.timelock, c.rewards);
        (registry, subscriptions, swap) = (c.registry, c.subscriptions, c.swap);
        holders = holders_;
        currentTime = block.timestamp;
    }

    modifier atCurrentTime() {
        vm.warp(currentTime);
        _;
    }

    function proposalCount() external view returns (uint256) {
        return proposals.length;
    }

    function _holder(uint256 seed) internal view returns (address) {
        return holders[seed % holders.length];
    }

    /// @notice What the quorum must count, computed here from balances, not by the governor.
    function _expectedQuorum() internal view returns (uint256) {
        uint256 protocol = token.balanceOf(address(timelock)) + token.balanceOf(address(rewards))
            + token.balanceOf(swap) + token.balanceOf(address(subscriptions))
            + token.balanceOf(address(registry));
        return (token.totalSupply() - protocol) * 4 / 100;
    }

    // ------------------------------------------------------------------ holders

    function delegate(uint256 fromSeed, uint256 toSeed) external atCurrentTime {
        vm.prank(_holder(fromSeed));
        token.delegate(_holder(toSeed));
    }

    function transfer(uint256 fromSeed, uint256 toSeed, uint256 amount) external atCurrentTime {
        address from = _holder(fromSeed);
        amount = _bound(amount, 0, token.balanceOf(from));
        vm.prank(from);
        require(token.transfer(_holder(toSeed), amount), "transfer");
    }

    /// @notice A holder pays for a subscription: NDS leaves the votable supply.
    function subscribe(uint256 holderSeed, uint256 months) external atCurrentTime {
        address holder = _holder(holderSeed);
        uint32 m = uint32(_bound(months, 1, 12));
        uint256 price = subscriptions.pricePerPeriod();
        if (token.balanceOf(holder) < price * m) return;
        vm.startPrank(holder);
        token.approve(address(subscriptions), price * m);
        subscriptions.subscribe(holder, m, price);
        vm.stopPrank();
    }

    function warp(uint256 secondsToPass) external {
        currentTime += _bound(secondsToPass, 1, 300);
        warps++;
    }

    // ------------------------------------------------------------------ proposals

    /// @notice One call: a price, or a new value for one of the four clocks, in ranges that
    /// straddle the orderings (local: round 91 s, window 120 s, unbonding 3,600 s).
    function _call(uint256 kind, uint256 value)
        internal
        view
        returns (address target, bytes memory data)
    {
        kind = kind % 6;
        if (kind == 0) {
            uint256 price = _bound(value, 1 ether, 100 ether);
            return (address(subscriptions), abi.encodeCall(SubscriptionManager.setPrice, (price)));
        }
        if (kind == 1) {
            uint64 window = uint64(_bound(value, 1, 2 hours));
            return
                (address(rewards), abi.encodeCall(RewardDistributor.setChallengePeriod, (window)));
        }
        if (kind == 2) {
            uint64 unbonding = uint64(_bound(value, 1 hours, 3 hours));
            return (address(registry), abi.encodeCall(NodeRegistry.setUnbondingPeriod, (unbonding)));
        }
        if (kind == 3) {
            uint48 delay = uint48(_bound(value, 0, 200));
            return (address(governor), abi.encodeCall(GovernorSettings.setVotingDelay, (delay)));
        }
        if (kind == 4) {
            uint32 period = uint32(_bound(value, 1, 300));
            return (address(governor), abi.encodeCall(GovernorSettings.setVotingPeriod, (period)));
        }
        uint256 minDelay = _bound(value, 0, 200);
        return (address(timelock), abi.encodeCall(TimelockController.updateDelay, (minDelay)));
    }

    function propose(uint256 proposerSeed, uint256 kind, uint256 value)
        public
        atCurrentTime
        returns (bool ok, uint256 index)
    {
        (address target, bytes memory data) = _call(kind, value);
        Proposal storage p = proposals.push();
        p.targets.push(target);
        p.values.push(0);
        p.calldatas.push(data);
        string memory description = string.concat("proposal ", vm.toString(proposals.length));
        p.descriptionHash = keccak256(bytes(description));
        p.expectedQuorum = _expectedQuorum();
        vm.prank(_holder(proposerSeed));
        try governor.propose(p.targets, p.values, p.calldatas, description) returns (uint256 id) {
            p.id = id;
            if (governor.proposalQuorum(id) != p.expectedQuorum) quorumMismatch = true;
            proposed++;
            return (true, proposals.length - 1);
        } catch {
            proposals.pop();
            return (false, 0);
        }
    }

    function vote(uint256 voterSeed, uint256 proposalSeed, uint8 support) public atCurrentTime {
        if (proposals.length == 0) return;
        Proposal storage p = proposals[proposalSeed % proposals.length];
        vm.prank(_holder(voterSeed));
        try governor.castVote(p.id, support % 3) {
            votes++;
        } catch {}
    }

    function queue(uint256 proposalSeed) public atCurrentTime {
        if (proposals.length == 0) return;
        Proposal storage p = proposals[proposalSeed % proposals.length];
        try governor.queue(p.targets, p.values, p.calldatas, p.descriptionHash) {
            queued++;
        } catch {}
    }

    function execute(uint256 proposalSeed) public atCurrentTime {
        if (proposals.length == 0) return;
        Proposal storage p = proposals[proposalSeed % proposals.length];
        (, uint256 forVotes, uint256 abstainVotes) = governor.proposalVotes(p.id);
        try governor.execute(p.targets, p.values, p.calldatas, p.descriptionHash) {
            executed++;
            if (forVotes + abstainVotes < p.expectedQuorum) executedWithoutQuorum = true;
        } catch {
            executionsReverted++;
        }
    }

    /// @notice A whole round as fast as the delays allow: propose, the holders in `voterMask`
    /// vote `support`, queue, execute. Makes executions (and ordering-breaking attempts) common.
    function round(
        uint256 proposerSeed,
        uint256 kind,
        uint256 value,
        uint8 voterMask,
        uint8 support
    ) external {
        (bool ok, uint256 index) = propose(proposerSeed, kind, value);
        if (!ok) return;
        uint256 id = proposals[index].id;
        currentTime = governor.proposalSnapshot(id) + 1;
        for (uint256 i = 0; i < holders.length; i++) {
            if ((voterMask >> i) & 1 == 1) vote(i, index, support);
        }
        currentTime = governor.proposalDeadline(id) + 1;
        queue(index);
        uint256 eta = governor.proposalEta(id);
        if (eta > currentTime) currentTime = eta;
        execute(index);
    }
}

/// @notice The local deployment, its five holders self-delegated, and the handler.
abstract contract GovernanceHandlerBase is NodusTestBase {
    GovernanceHandler internal handler;

    function setUp() public virtual override {
        super.setUp();
        address[] memory holders = new address[](5);
        (holders[0], holders[1], holders[2], holders[3], holders[4]) =
        (alice, bob, carol, operator1, operator2);
        for (uint256 i = 0; i < holders.length; i++) {
            vm.prank(holders[i]);
            token.delegate(holders[i]);
        }
        vm.warp(block.timestamp + 1);
        handler = new GovernanceHandler(_contracts(), holders);
    }
}

/// @notice Governance invariants on the local deployment: no proposal executes without the
/// quorum of votable supply fixed at its creation, and the timing orderings always hold.
contract GovernanceInvariantTest is GovernanceHandlerBase {
    function setUp() public override {
        super.setUp();
        targetContract(address(handler));
    }

    function invariant_NoExecutionWithoutQuorumOfVotableSupply() public view {
        assertFalse(handler.executedWithoutQuorum());
    }

    function invariant_ProposalQuorumIsFourPercentOfVotableSupply() public view {
        assertFalse(handler.quorumMismatch());
    }

    function invariant_ChallengeWindowOutlastsGovernanceRound() public view {
        uint256 round = governor.votingDelay() + governor.votingPeriod() + timelock.getMinDelay();
        assertGt(rewards.challengePeriod(), round);
    }

    function invariant_UnbondingOutlastsWindowPlusRound() public view {
        uint256 round = governor.votingDelay() + governor.votingPeriod() + timelock.getMinDelay();
        assertGt(registry.unbondingPeriod(), rewards.challengePeriod() + round);
    }

    function afterInvariant() public view {
        console2.log("proposed", handler.proposed());
        console2.log("votes", handler.votes());
        console2.log("queued", handler.queued());
        console2.log("executed", handler.executed());
        console2.log("executions reverted", handler.executionsReverted());
        console2.log("warps", handler.warps());
    }
}

/// @notice The handler's round really passes, executes and refuses ordering-breaking changes.
contract GovernanceHandlerTest is GovernanceHandlerBase {
    function test_Round_ExecutesAPriceChange() public {
        handler.round(0, 0, 5 ether, 0x1f, 1);
        assertEq(handler.executed(), 1);
        assertEq(subscriptions.pricePerPeriod(), 5 ether);
    }

    function test_Round_RefusesAWindowShorterThanARound() public {
        handler.round(0, 1, 60, 0x1f, 1);
        assertEq(handler.executed(), 0);
        assertEq(handler.executionsReverted(), 1);
        assertEq(rewards.challengePeriod(), 120);
    }
}
