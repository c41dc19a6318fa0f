// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {NDSToken} from "../src/NDSToken.sol";
import {NodeRegistry} from "../src/NodeRegistry.sol";
import {NodusGovernor} from "../src/NodusGovernor.sol";
import {NodusSwap} from "../src/NodusSwap.sol";
import {NodusTimelock} from "../src/NodusTimelock.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";
import {SubscriptionManager} from "../src/SubscriptionManager.sol";
import {TimingGuard} from "../src/TimingGuard.sol";
import {
    IChallengeWindow,
    IGovernorClocks,
    ITimelockDelay,
    IUnbondingPeriod
} from "../src/interfaces/ITimingGuard.sol";

/// @title NodusDeployment
/// @notice Deploys and wires the whole protocol. Used by Deploy.s.sol (under a broadcast) and by
/// the forge tests, so tests exercise exactly the wiring that ships.
/// @dev Internal functions run in the caller's context: `new` and calls come from the broadcaster
/// in a script and from the test contract in a test. `admin` must be that caller.
/// The supply is split into the treasury (the timelock), the reward pool, the swap's liquidity and
/// the circulating holders (community and contributors, `holders`), who alone can vote: the
/// governor's quorum leaves the protocol's own holdings out (see README "Token distribution").
library NodusDeployment {
    /// @notice Every tunable of a deployment.
    struct Params {
        address admin; // the caller: receives the supply, then gives up every role
        address oracle; // the control plane's key (RewardDistributor ORACLE_ROLE)
        address guardian; // fast veto of a pending root (RewardDistributor GUARDIAN_ROLE)
        uint256 totalSupply;
        uint256 pricePerPeriod;
        uint16 rewardBps;
        uint256 minStake;
        uint64 unbondingPeriod;
        uint256 epochBudget;
        uint64 challengePeriod;
        uint48 votingDelay;
        uint32 votingPeriod;
        uint256 proposalThreshold;
        uint256 timelockDelay;
        uint256 rewardPoolFunding; // NDS sent to the RewardDistributor
        uint256 swapNds; // initial swap liquidity, NDS side
        uint256 swapEth; // initial swap liquidity, ETH side
        address[] holders; // the circulating supply's holders (community, contributors)
        uint256[] holderNds; // what each of `holders` receives
    }

    /// @notice The deployed contracts.
    struct Deployment {
        NDSToken token;
        NodusTimelock timelock;
        NodusGovernor governor;
        RewardDistributor rewards;
        SubscriptionManager subscriptions;
        NodeRegistry registry;
        NodusSwap swap;
        TimingGuard guard;
    }

    /// @notice Each local dev account's share of the circulating supply.
    uint256 internal constant LOCAL_HOLDER_NDS = 100_000 ether;
    /// @notice The production reward pool: 15% of the supply.
    uint256 internal constant PRODUCTION_REWARD_POOL = 150_000_000 ether;

    error HolderListMismatch(uint256 holders, uint256 amounts);
    error CirculatingBelowThreshold(uint256 circulating, uint256 proposalThreshold);

    /// @notice The defaults of a local chain: delays of seconds to minutes; the dev accounts are
    /// the circulating holders, 100,000 NDS each.
    function localParams(address admin, address oracle, address[] memory devAccounts)
        internal
        pure
        returns (Params memory p)
    {
        p.admin = admin;
        p.oracle = oracle;
        p.totalSupply = 1_000_000_000 ether;
        p.pricePerPeriod = 10 ether;
        p.rewardBps = 8_000;
        p.minStake = 100 ether;
        p.unbondingPeriod = 1 hours;
        p.epochBudget = 10_000 ether;
        p.challengePeriod = 120;
        p.votingDelay = 1;
        p.votingPeriod = 60;
        p.proposalThreshold = 0;
        p.timelockDelay = 30;
        p.rewardPoolFunding = 1_000_000 ether;
        p.swapNds = 1_000_000 ether;
        p.swapEth = 100 ether;
        p.holders = devAccounts;
        p.holderNds = new uint256[](devAccounts.length);
        for (uint256 i = 0; i < devAccounts.length; i++) {
            p.holderNds[i] = LOCAL_HOLDER_NDS;
        }
    }

    /// @notice The defaults of any other chain: a governance round takes 4 days (voting delay 1
    /// + voting period 2 + timelock 1), the challenge window (6 days) outlasts it by 2 days and
    /// unbonding (14 days) outlasts both (10 days). 15% of the supply funds the reward pool, the
    /// circulating `holders` get `holderNds`, no preset swap liquidity; the rest is the treasury.
    function productionParams(
        address admin,
        address oracle,
        address[] memory holders,
        uint256[] memory holderNds
    ) internal pure returns (Params memory p) {
        p = localParams(admin, oracle, new address[](0));
        p.unbondingPeriod = 14 days;
        p.challengePeriod = 6 days;
        p.votingDelay = 1 days;
        p.votingPeriod = 2 days;
        p.timelockDelay = 1 days;
        p.proposalThreshold = 100_000 ether;
        p.rewardPoolFunding = PRODUCTION_REWARD_POOL;
        p.swapNds = 0;
        p.swapEth = 0;
        p.holders = holders;
        p.holderNds = holderNds;
    }

    /// @notice Deploys everything, funds it, hands every role to the timelock and renounces the
    /// deployer's. The rest of the supply goes to the treasury (the timelock).
    function deploy(Params memory p) internal returns (Deployment memory d) {
        _checkCirculating(p);

        // First, so the four contracts owning a clock can take its address.
        d.guard = new TimingGuard();
        d.token = new NDSToken(p.admin, p.totalSupply);

        address[] memory none = new address[](0);
        address[] memory anyone = new address[](1); // address(0): anyone may execute
        d.timelock = new NodusTimelock(p.timelockDelay, none, anyone, p.admin, d.guard);
        address timelock = address(d.timelock);

        d.rewards = new RewardDistributor(
            d.token, timelock, p.oracle, p.guardian, p.epochBudget, p.challengePeriod, d.guard
        );
        d.subscriptions = new SubscriptionManager(
            d.token, address(d.rewards), timelock, timelock, p.pricePerPeriod, p.rewardBps
        );
        d.registry = new NodeRegistry(d.token, timelock, p.minStake, p.unbondingPeriod, d.guard);
        d.swap = new NodusSwap(d.token, d.subscriptions);

        // Last, so the quorum can leave out every protocol holding.
        d.governor = _deployGovernor(p, d);

        // The governor is the timelock's only proposer (and canceller); the deployer leaves.
        d.timelock.grantRole(d.timelock.PROPOSER_ROLE(), address(d.governor));
        d.timelock.grantRole(d.timelock.CANCELLER_ROLE(), address(d.governor));
        d.timelock.renounceRole(d.timelock.DEFAULT_ADMIN_ROLE(), p.admin);

        if (p.rewardPoolFunding > 0) {
            d.token.approve(address(d.rewards), p.rewardPoolFunding);
            d.rewards.fund(p.rewardPoolFunding);
        }
        if (p.swapNds > 0) {
            d.token.approve(address(d.swap), p.swapNds);
            d.swap.addLiquidity{value: p.swapEth}(p.swapNds, 0, timelock, type(uint256).max);
        }
        uint256 keep = 0; // the admin's own share, when it is a holder (local dev account 0)
        for (uint256 i = 0; i < p.holders.length; i++) {
            if (p.holders[i] == p.admin) keep += p.holderNds[i];
            else d.token.transfer(p.holders[i], p.holderNds[i]);
        }
        d.token.transfer(timelock, d.token.balanceOf(p.admin) - keep);

        // From now on every change of a clock keeps the orderings; check the initial values.
        d.guard
            .initialize(
                IGovernorClocks(address(d.governor)),
                ITimelockDelay(timelock),
                IChallengeWindow(address(d.rewards)),
                IUnbondingPeriod(address(d.registry))
            );
        d.guard.check();
    }

    function _checkCirculating(Params memory p) private pure {
        if (p.holders.length != p.holderNds.length) {
            revert HolderListMismatch(p.holders.length, p.holderNds.length);
        }
        uint256 circulating = 0;
        for (uint256 i = 0; i < p.holderNds.length; i++) {
            circulating += p.holderNds[i];
        }
        // Circulating holders alone must be able to propose (and, since the quorum counts only
        // supply outside the protocol, to reach quorum).
        if (circulating == 0 || circulating < p.proposalThreshold) {
            revert CirculatingBelowThreshold(circulating, p.proposalThreshold);
        }
    }

    function _deployGovernor(Params memory p, Deployment memory d) private returns (NodusGovernor) {
        address[] memory protocolHolders = new address[](5);
        protocolHolders[0] = address(d.timelock);
        protocolHolders[1] = address(d.rewards);
        protocolHolders[2] = address(d.swap);
        protocolHolders[3] = address(d.subscriptions);
        protocolHolders[4] = address(d.registry);
        return new NodusGovernor(
            d.token,
            d.timelock,
            p.votingDelay,
            p.votingPeriod,
            p.proposalThreshold,
            d.guard,
            protocolHolders
        );
    }
}
