// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {console} from "forge-std/console.sol";
import {NDSToken} from "../../src/NDSToken.sol";
import {RewardDistributor} from "../../src/RewardDistributor.sol";
import {RewardTestBase, StandardMerkle} from "../RewardDistributor.t.sol";

/// @notice Drives the RewardDistributor through random epochs the way the control plane and
/// governance do, keeping the expected state in ghost variables: each epoch adds random
/// allocations within the budget and the pool's headroom, the oracle proposes the root of the
/// new cumulative amounts (built in Solidity), and after the window it is accepted or, now and
/// then, revoked by the timelock (its allocations are then discarded). Anyone claims with valid
/// proofs; stale proofs and extra funding are thrown in. The guardian key calls, as itself,
/// every function it might: only its revocations may succeed.
contract RewardHandler is Test {
    RewardDistributor public immutable rewards;
    NDSToken public immutable token;
    address public immutable oracle;
    address public immutable guardian;
    address public immutable guardianKey;

    address[] internal _accounts;
    /// @notice Cumulative allocation per account in the accepted root (index of _accounts).
    uint256[] internal _accepted;
    uint256[] internal _pending;
    bool public hasPending;
    bytes32[][] internal _proofs; // of the accepted root
    bytes32 internal _previousRoot; // the accepted root before the current one
    uint256[] internal _previousAmounts;
    bytes32[][] internal _previousProofs;

    // ghosts
    uint256 public ghostClaimed;
    mapping(address account => uint256 amount) public ghostClaimedOf;
    uint256 public funded; // through fund(), including the deployment's
    uint256 public donated; // by plain transfer
    uint64 public ghostEpoch;
    uint64 public ghostRootEpoch;

    // call counters (reported after each run)
    uint256 public proposals;
    uint256 public accepts;
    uint256 public revokes;
    uint256 public claims;
    uint256 public staleClaimsPaid; // must stay zero
    uint256 public violations; // must stay zero
    uint256 public fundings;
    uint256 public guardianRevokes;
    uint256 public guardianOtherSuccesses; // must stay zero

    constructor(
        RewardDistributor rewards_,
        NDSToken token_,
        address oracle_,
        address guardian_,
        address guardianKey_,
        address[] memory accounts_
    ) {
        (rewards, token, oracle, guardian) = (rewards_, token_, oracle_, guardian_);
        guardianKey = guardianKey_;
        funded = token_.balanceOf(address(rewards_));
        for (uint256 i = 0; i < accounts_.length; i++) {
            _accounts.push(accounts_[i]);
            _accepted.push(0);
            _pending.push(0);
        }
    }

    // ------------------------------------------------------------------ actions

    /// @notice The oracle proposes the next epoch with random new allocations.
    function propose(uint256 seed) external {
        if (hasPending) return;
        uint256 headroom = rewards.totalFunded() - rewards.totalCumulative();
        uint256 budget = rewards.epochBudget();
        uint256 cap = headroom < budget ? headroom : budget;

        uint256 n = _accounts.length;
        uint256 increase = 0;
        for (uint256 i = 0; i < n; i++) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            // About one account in three gets nothing this epoch.
            uint256 share = r % 3 == 0 ? 0 : (r >> 8) % (cap / n + 1);
            _pending[i] = _accepted[i] + share;
            increase += share;
        }
        uint256 total = rewards.totalCumulative() + increase;
        (bytes32 root,) = StandardMerkle.build(_accounts, _pending);
        uint64 epoch = rewards.currentEpoch() + 1;
        vm.prank(oracle);
        rewards.proposeRoot(epoch, root, total, keccak256(abi.encode(epoch)));
        hasPending = true;
        proposals++;
    }

    /// @notice After the window, anyone accepts the pending root, or (one time in four) the
    /// guardian revokes it and its allocations are discarded.
    function settle(uint256 seed, address caller) external {
        if (!hasPending) return;
        uint64 validAt = rewards.pendingRoot().validAt;
        if (block.timestamp < validAt) vm.warp(uint256(validAt) + seed % 1 hours);
        ghostEpoch++;
        hasPending = false;
        if (seed % 4 == 0) {
            vm.prank(guardian);
            rewards.revokeRoot();
            revokes++;
            return;
        }
        bytes32 oldRoot = rewards.currentRoot();
        vm.prank(caller);
        rewards.acceptRoot();
        accepts++;
        ghostRootEpoch = ghostEpoch;

        if (_proofs.length > 0) {
            _previousRoot = oldRoot;
            delete _previousProofs;
            delete _previousAmounts;
            for (uint256 i = 0; i < _proofs.length; i++) {
                _previousProofs.push(_proofs[i]);
                _previousAmounts.push(_accepted[i]);
            }
        }
        (, bytes32[][] memory proofs) = StandardMerkle.build(_accounts, _pending);
        delete _proofs;
        for (uint256 i = 0; i < _accounts.length; i++) {
            _accepted[i] = _pending[i];
            _proofs.push(proofs[i]);
        }
    }

    /// @notice Someone claims an account's whole cumulative amount with its valid proof. A
    /// handler's reverts are ignored (fail_on_revert = false), so surprises are counted in
    /// `violations`, which an invariant keeps at zero, instead of asserted here.
    function claim(uint256 who, address caller) external {
        if (_proofs.length == 0) return;
        uint256 i = who % _accounts.length;
        address account = _accounts[i];
        uint256 already = rewards.claimed(account);
        uint256 balanceBefore = token.balanceOf(account);
        vm.prank(caller);
        try rewards.claim(account, _accepted[i], _proofs[i]) returns (uint256 paid) {
            if (_accepted[i] <= already) violations++; // should have been NothingToClaim
            if (paid != _accepted[i] - already) violations++;
            if (token.balanceOf(account) - balanceBefore != paid) violations++;
            ghostClaimed += paid;
            ghostClaimedOf[account] += paid;
            claims++;
        } catch (bytes memory reason) {
            bool expected = _accepted[i] <= already
                && keccak256(reason)
                    == keccak256(abi.encodeWithSelector(RewardDistributor.NothingToClaim.selector));
            if (!expected) violations++;
        }
    }

    /// @notice A proof of the previous accepted tree must not pay once the root changed.
    function claimStale(uint256 who) external {
        if (_previousProofs.length == 0 || _previousRoot == rewards.currentRoot()) return;
        uint256 i = who % _accounts.length;
        try rewards.claim(_accounts[i], _previousAmounts[i], _previousProofs[i]) returns (
            uint256 paid
        ) {
            // Only possible if this exact path is still in the current tree; count it.
            staleClaimsPaid++;
            ghostClaimed += paid;
            ghostClaimedOf[_accounts[i]] += paid;
        } catch {}
    }

    /// @notice The guardian key, as itself: one time in three it revokes the pending root (as the
    /// watcher would); otherwise it tries one of everything else it could call, which must fail.
    function guardianActs(uint256 seed, uint256 amount) external {
        uint256 pick = seed % 9;
        if (pick < 2 && hasPending) {
            RewardDistributor.PendingRoot memory p = rewards.pendingRoot();
            vm.prank(guardianKey);
            if (pick == 0) rewards.revokeEpoch(p.epoch, p.root);
            else rewards.revokeRoot();
            ghostEpoch++;
            hasPending = false;
            revokes++;
            guardianRevokes++;
            return;
        }
        bytes memory data;
        uint64 next = rewards.currentEpoch() + 1;
        if (pick == 2) {
            data = abi.encodeCall(rewards.proposeRoot, (next, bytes32(seed), amount, bytes32(0)));
        } else if (pick == 3) {
            data = abi.encodeCall(rewards.withdrawRoot, (next, rewards.pendingRoot().root));
        } else if (pick == 4) {
            data = abi.encodeCall(rewards.setEpochBudget, (amount));
        } else if (pick == 5) {
            // casting to uint64 is safe: the value is below 2 days
            // forge-lint: disable-next-line(unsafe-typecast)
            data = abi.encodeCall(rewards.setChallengePeriod, (uint64(amount % 2 days) + 1));
        } else if (pick == 6) {
            data = abi.encodeCall(rewards.grantRole, (rewards.ORACLE_ROLE(), guardianKey));
        } else if (pick == 7) {
            data = abi.encodeCall(rewards.fund, (_bound(amount, 1, 1_000 ether)));
        } else {
            data = abi.encodeCall(rewards.revokeRole, (rewards.GUARDIAN_ROLE(), guardian));
        }
        vm.prank(guardianKey);
        (bool ok,) = address(rewards).call(data);
        if (ok) guardianOtherSuccesses++;
    }

    /// @notice Revenue reaches the pool through `fund` (the treasury stands in for
    /// flushRevenue).
    function fund(uint256 amount) external {
        amount = _bound(amount, 1, 20_000 ether);
        vm.startPrank(guardian);
        token.approve(address(rewards), amount);
        rewards.fund(amount);
        vm.stopPrank();
        funded += amount;
        fundings++;
    }

    /// @notice NDS sent by plain transfer: in the pool, but backing no root.
    function donate(uint256 amount) external {
        amount = _bound(amount, 0, 1_000 ether);
        vm.prank(guardian);
        assertTrue(token.transfer(address(rewards), amount));
        donated += amount;
    }

    function warp(uint256 secondsAhead) external {
        vm.warp(block.timestamp + _bound(secondsAhead, 0, 2 days));
    }

    // ------------------------------------------------------------------ views for invariants

    function accountCount() external view returns (uint256) {
        return _accounts.length;
    }

    function accountAt(uint256 i) external view returns (address) {
        return _accounts[i];
    }

    function acceptedOf(uint256 i) external view returns (uint256) {
        return _accepted[i];
    }

    function claimedTotal() external view returns (uint256 total) {
        for (uint256 i = 0; i < _accounts.length; i++) {
            total += rewards.claimed(_accounts[i]);
        }
    }

    function acceptedTotal() external view returns (uint256 total) {
        for (uint256 i = 0; i < _accepted.length; i++) {
            total += _accepted[i];
        }
    }
}

/// @notice Invariants of the reward pool's accounting over random epochs, claims and revokes.
contract RewardInvariantTest is RewardTestBase {
    RewardHandler internal handler;

    function setUp() public override {
        super.setUp();
        address[] memory accounts = new address[](6);
        (accounts[0], accounts[1], accounts[2], accounts[3], accounts[4]) =
        (alice, bob, carol, operator1, operator2);
        accounts[5] = makeAddr("new-operator"); // holds no NDS before its first claim
        handler = new RewardHandler(rewards, token, oracle, address(timelock), guardian, accounts);
        targetContract(address(handler));
    }

    /// @notice Issue 8: the sum of all claims never exceeds the accepted total, and the
    /// distributor's own counter is that sum.
    function invariant_TotalClaimsWithinAcceptedTotal() public view {
        assertEq(rewards.totalClaimed(), handler.ghostClaimed());
        assertEq(rewards.totalClaimed(), handler.claimedTotal());
        assertLe(rewards.totalClaimed(), rewards.totalCumulative());
    }

    /// @notice Issue 8: the guardian key revokes and does nothing else; it never holds NDS.
    function invariant_GuardianMovesNoFunds() public view {
        assertEq(handler.guardianOtherSuccesses(), 0);
        assertEq(token.balanceOf(guardian), 0);
        assertTrue(rewards.hasRole(rewards.GUARDIAN_ROLE(), guardian));
        assertFalse(rewards.hasRole(rewards.ORACLE_ROLE(), guardian));
    }

    function invariant_GhostClaimsEqualClaimedSum() public view {
        assertEq(handler.ghostClaimed(), handler.claimedTotal());
    }

    function invariant_FundedMatchesGhost() public view {
        assertEq(rewards.totalFunded(), handler.funded());
    }

    function invariant_ClaimsWithinFunding() public view {
        assertLe(handler.ghostClaimed(), rewards.totalFunded());
    }

    function invariant_BalancePlusClaimedEqualsFundedPlusDonated() public view {
        assertEq(
            token.balanceOf(address(rewards)) + handler.ghostClaimed(),
            handler.funded() + handler.donated()
        );
    }

    function invariant_ClaimedWithinAcceptedCumulative() public view {
        for (uint256 i = 0; i < handler.accountCount(); i++) {
            address account = handler.accountAt(i);
            assertLe(rewards.claimed(account), handler.acceptedOf(i));
            assertEq(rewards.claimed(account), handler.ghostClaimedOf(account));
        }
    }

    function invariant_PoolCoversEverythingUnclaimed() public view {
        assertLe(
            rewards.totalCumulative() - handler.ghostClaimed(), token.balanceOf(address(rewards))
        );
    }

    function invariant_AcceptedTotalWithinFunding() public view {
        assertLe(rewards.totalCumulative(), rewards.totalFunded());
    }

    function invariant_TotalCumulativeIsSumOfAcceptedLeaves() public view {
        assertEq(rewards.totalCumulative(), handler.acceptedTotal());
    }

    function invariant_EpochsOnlyMoveForward() public view {
        assertEq(rewards.currentEpoch(), handler.ghostEpoch());
        assertEq(rewards.rootEpoch(), handler.ghostRootEpoch());
        assertEq(rewards.pendingRoot().epoch != 0, handler.hasPending());
    }

    function invariant_StaleProofsNeverPay() public view {
        assertEq(handler.staleClaimsPaid(), 0);
    }

    function invariant_ValidClaimsPayExactlyTheDifference() public view {
        assertEq(handler.violations(), 0);
    }

    function afterInvariant() external view {
        console.log("proposals", handler.proposals(), "accepts", handler.accepts());
        console.log("revokes", handler.revokes(), "claims", handler.claims());
        console.log("fundings", handler.fundings(), "epoch", rewards.currentEpoch());
        console.log("guardian revokes", handler.guardianRevokes());
    }
}
