// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {NDSToken} from "../src/NDSToken.sol";
import {NodeRegistry} from "../src/NodeRegistry.sol";
import {NodusGovernor} from "../src/NodusGovernor.sol";
import {NodusSwap} from "../src/NodusSwap.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";
import {SubscriptionManager} from "../src/SubscriptionManager.sol";

/// @title NodusDeployment
/// @notice Deploys and wires the whole protocol. Used by Deploy.s.sol (under a broadcast) and by
/// the forge tests, so tests exercise exactly the wiring that ships.
/// @dev Internal functions run in the caller's context: `new` and calls come from the broadcaster
/// in a script and from the test contract in a test. `admin` must be that caller.
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
        address[] devAccounts; // each receives devAccountNds (local chains)
        uint256 devAccountNds;
    }

    /// @notice The deployed contracts.
    struct Deployment {
        NDSToken token;
        TimelockController timelock;
        NodusGovernor governor;
        RewardDistributor rewards;
        SubscriptionManager subscriptions;
        NodeRegistry registry;
        NodusSwap swap;
    }

    error UnbondingTooShort(uint64 unbondingPeriod, uint256 slashPath);
    error ChallengeWindowTooShort(uint64 challengePeriod, uint256 governancePath);

    /// @notice The defaults of a local chain: delays of seconds to minutes, funded dev accounts.
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
        p.devAccounts = devAccounts;
        p.devAccountNds = 100_000 ether;
    }

    /// @notice Deploys everything, funds it, hands every role to the timelock and renounces the
    /// deployer's. The rest of the supply goes to the treasury (the timelock).
    function deploy(Params memory p) internal returns (Deployment memory d) {
        // The DAO (the guardian) must be able to revoke a bad root before anyone may accept it:
        // a whole governance round (delay, vote, timelock) fits inside the challenge window.
        uint256 governancePath = uint256(p.votingDelay) + p.votingPeriod + p.timelockDelay;
        if (p.challengePeriod <= governancePath) {
            revert ChallengeWindowTooShort(p.challengePeriod, governancePath);
        }
        // A slash for a bad epoch needs the challenge window to spot it, then a governance
        // round: an operator must not be able to exit faster than that.
        uint256 slashPath = p.challengePeriod + governancePath;
        if (p.unbondingPeriod <= slashPath) revert UnbondingTooShort(p.unbondingPeriod, slashPath);

        d.token = new NDSToken(p.admin, p.totalSupply);

        address[] memory none = new address[](0);
        address[] memory anyone = new address[](1); // address(0): anyone may execute
        d.timelock = new TimelockController(p.timelockDelay, none, anyone, p.admin);
        d.governor = new NodusGovernor(
            d.token, d.timelock, p.votingDelay, p.votingPeriod, p.proposalThreshold
        );
        address timelock = address(d.timelock);

        d.rewards = new RewardDistributor(
            d.token, timelock, p.oracle, p.guardian, p.epochBudget, p.challengePeriod
        );
        d.subscriptions = new SubscriptionManager(
            d.token, address(d.rewards), timelock, timelock, p.pricePerPeriod, p.rewardBps
        );
        d.registry = new NodeRegistry(d.token, timelock, p.minStake, p.unbondingPeriod);
        d.swap = new NodusSwap(d.token, d.subscriptions);

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
        for (uint256 i = 0; i < p.devAccounts.length; i++) {
            if (p.devAccounts[i] != p.admin) d.token.transfer(p.devAccounts[i], p.devAccountNds);
        }
        // The admin keeps a dev account's share on a local chain; the rest is the treasury's.
        uint256 keep = _contains(p.devAccounts, p.admin) ? p.devAccountNds : 0;
        d.token.transfer(timelock, d.token.balanceOf(p.admin) - keep);
    }

    function _contains(address[] memory list, address item) private pure returns (bool) {
        for (uint256 i = 0; i < list.length; i++) {
            if (list[i] == item) return true;
        }
        return false;
    }
}
