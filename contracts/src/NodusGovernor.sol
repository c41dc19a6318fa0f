// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Governor} from "@openzeppelin/contracts/governance/Governor.sol";
import {
    GovernorCountingSimple
} from "@openzeppelin/contracts/governance/extensions/GovernorCountingSimple.sol";
import {GovernorSettings} from "@openzeppelin/contracts/governance/extensions/GovernorSettings.sol";
import {
    GovernorTimelockControl
} from "@openzeppelin/contracts/governance/extensions/GovernorTimelockControl.sol";
import {GovernorVotes} from "@openzeppelin/contracts/governance/extensions/GovernorVotes.sol";
import {
    GovernorVotesQuorumFraction
} from "@openzeppelin/contracts/governance/extensions/GovernorVotesQuorumFraction.sol";
import {IVotes} from "@openzeppelin/contracts/governance/utils/IVotes.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {INodusGovernor} from "./interfaces/INodusGovernor.sol";
import {ITimingGuard} from "./interfaces/ITimingGuard.sol";

/// @title NodusGovernor
/// @notice The Nodus DAO: NDS holders' delegated votes decide every protocol parameter; passed
/// proposals run through the TimelockController, which owns every contract.
/// @dev Delays are in seconds because NDS uses a timestamp clock. Production defaults (documented
/// in the README): voting delay 1 day, voting period 2 days, timelock delay 1 day; a local chain
/// uses seconds. Quorum is 4% of the votable supply: the total supply minus the balances of the
/// protocol's own holders (treasury, reward pool, swap, subscription revenue, node stakes), which
/// can never vote. It is fixed per proposal when the proposal is created. Changing the voting
/// delay or period goes through the TimingGuard, which keeps the reward challenge window longer
/// than a governance round.
contract NodusGovernor is
    INodusGovernor,
    Governor,
    GovernorSettings,
    GovernorCountingSimple,
    GovernorVotes,
    GovernorVotesQuorumFraction,
    GovernorTimelockControl
{
    /// @notice Most protocol holders the quorum may leave out (bounds the gas of `propose`).
    uint256 public constant MAX_QUORUM_EXCLUDED = 16;

    /// @notice Checks the timing orderings after every voting delay or period change.
    ITimingGuard public immutable timingGuard;

    address[] private _quorumExcluded;
    mapping(uint256 proposalId => uint256 quorum) private _proposalQuorum;

    /// @param token The NDS token (ERC20Votes).
    /// @param timelock The TimelockController whose only proposer is this governor.
    /// @param votingDelay_ Seconds between proposing and the vote's start (the snapshot).
    /// @param votingPeriod_ Seconds the vote lasts.
    /// @param proposalThreshold_ Votes needed to propose, in NDS wei.
    /// @param timingGuard_ The protocol's TimingGuard.
    /// @param quorumExcluded_ The protocol's own holders, left out of the quorum.
    constructor(
        IVotes token,
        TimelockController timelock,
        uint48 votingDelay_,
        uint32 votingPeriod_,
        uint256 proposalThreshold_,
        ITimingGuard timingGuard_,
        address[] memory quorumExcluded_
    )
        Governor("NodusGovernor")
        GovernorSettings(votingDelay_, votingPeriod_, proposalThreshold_)
        GovernorVotes(token)
        GovernorVotesQuorumFraction(4)
        GovernorTimelockControl(timelock)
    {
        timingGuard = timingGuard_;
        _setQuorumExcluded(quorumExcluded_);
    }

    // ------------------------------------------------------------------ quorum of votable supply

    /// @inheritdoc INodusGovernor
    function votableSupply() public view returns (uint256 supply) {
        IERC20 nds = IERC20(address(token()));
        supply = nds.totalSupply();
        for (uint256 i = 0; i < _quorumExcluded.length; i++) {
            supply -= nds.balanceOf(_quorumExcluded[i]);
        }
    }

    /// @inheritdoc INodusGovernor
    function proposalQuorum(uint256 proposalId) public view returns (uint256) {
        return _proposalQuorum[proposalId];
    }

    /// @inheritdoc INodusGovernor
    function quorumExcluded() external view returns (address[] memory) {
        return _quorumExcluded;
    }

    /// @inheritdoc INodusGovernor
    function setQuorumExcluded(address[] calldata holders) external onlyGovernance {
        _setQuorumExcluded(holders);
    }

    /// @notice The quorum a proposal created now needs: the quorum fraction (as of `timepoint`)
    /// of the current votable supply. A proposal's own quorum is `proposalQuorum`, fixed at its
    /// creation, because the protocol holders' past balances are not checkpointed.
    function quorum(uint256 timepoint)
        public
        view
        override(Governor, GovernorVotesQuorumFraction)
        returns (uint256)
    {
        return Math.mulDiv(votableSupply(), quorumNumerator(timepoint), quorumDenominator());
    }

    /// @dev Fixes the proposal's quorum from the votable supply at its creation.
    function _propose(
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        string memory description,
        address proposer
    ) internal override returns (uint256 proposalId) {
        proposalId = super._propose(targets, values, calldatas, description, proposer);
        uint256 votable = votableSupply();
        uint256 required = Math.mulDiv(votable, quorumNumerator(), quorumDenominator());
        _proposalQuorum[proposalId] = required;
        emit ProposalQuorumSet(proposalId, required, votable);
    }

    /// @dev For + abstain votes reach the quorum fixed at the proposal's creation.
    function _quorumReached(uint256 proposalId)
        internal
        view
        override(Governor, GovernorCountingSimple)
        returns (bool)
    {
        (, uint256 forVotes, uint256 abstainVotes) = proposalVotes(proposalId);
        return _proposalQuorum[proposalId] <= forVotes + abstainVotes;
    }

    function _setQuorumExcluded(address[] memory holders) private {
        if (holders.length > MAX_QUORUM_EXCLUDED) {
            revert QuorumExcludedTooMany(holders.length, MAX_QUORUM_EXCLUDED);
        }
        for (uint256 i = 0; i < holders.length; i++) {
            if (holders[i] == address(0)) revert QuorumExcludedInvalid(holders[i]);
            for (uint256 j = 0; j < i; j++) {
                if (holders[j] == holders[i]) revert QuorumExcludedInvalid(holders[i]);
            }
        }
        emit QuorumExcludedChanged(_quorumExcluded, holders);
        _quorumExcluded = holders;
    }

    // ------------------------------------------------------------------ timing guard

    /// @notice Changes the voting delay (only through governance); reverts with the guard's error
    /// when the challenge window would no longer outlast a governance round.
    function setVotingDelay(uint48 newVotingDelay) public override {
        super.setVotingDelay(newVotingDelay);
        timingGuard.check();
    }

    /// @notice Changes the voting period (only through governance); same guard as above.
    function setVotingPeriod(uint32 newVotingPeriod) public override {
        super.setVotingPeriod(newVotingPeriod);
        timingGuard.check();
    }

    // The overrides below only resolve Solidity's multiple inheritance.

    function votingDelay() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.votingDelay();
    }

    function votingPeriod() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.votingPeriod();
    }

    function proposalThreshold()
        public
        view
        override(Governor, GovernorSettings)
        returns (uint256)
    {
        return super.proposalThreshold();
    }

    function state(uint256 proposalId)
        public
        view
        override(Governor, GovernorTimelockControl)
        returns (ProposalState)
    {
        return super.state(proposalId);
    }

    function proposalNeedsQueuing(uint256 proposalId)
        public
        view
        override(Governor, GovernorTimelockControl)
        returns (bool)
    {
        return super.proposalNeedsQueuing(proposalId);
    }

    function _queueOperations(
        uint256 proposalId,
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) returns (uint48) {
        return super._queueOperations(proposalId, targets, values, calldatas, descriptionHash);
    }

    function _executeOperations(
        uint256 proposalId,
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) {
        super._executeOperations(proposalId, targets, values, calldatas, descriptionHash);
    }

    function _cancel(
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) returns (uint256) {
        return super._cancel(targets, values, calldatas, descriptionHash);
    }

    function _executor()
        internal
        view
        override(Governor, GovernorTimelockControl)
        returns (address)
    {
        return super._executor();
    }
}
