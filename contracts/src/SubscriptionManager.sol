// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IRewardPool} from "./interfaces/IRewardPool.sol";
import {ISubscriptionManager} from "./interfaces/ISubscriptionManager.sol";

/// @title SubscriptionManager
/// @notice Subscribers pay NDS here for VPN access: each call buys whole 30-day periods, and the
/// control plane serves a subscriber while `isActive` is true.
/// @dev Owned by the governance timelock, which alone sets the price and the revenue split.
/// Payments are pulled in one transfer into this contract and the reward pool's share is accrued;
/// `flushRevenue` (anyone) forwards the accrued share to the RewardDistributor and the rest to
/// the treasury. One transfer per payment instead of two keeps a renewal under 65k gas.
contract SubscriptionManager is ISubscriptionManager, Ownable {
    using SafeERC20 for IERC20;

    /// @inheritdoc ISubscriptionManager
    uint256 public constant PERIOD = 30 days;
    uint64 private constant PERIOD_64 = 30 days;
    /// @inheritdoc ISubscriptionManager
    uint32 public constant MAX_MONTHS = 36;
    /// @notice Basis-point denominator of the revenue split.
    uint16 public constant BPS = 10_000;
    /// @notice Upper bound on the price per period, so one payment's reward share always fits the
    /// packed accrual (uint112).
    uint256 public constant MAX_PRICE = type(uint112).max / MAX_MONTHS;

    /// @notice The NDS token.
    IERC20 public immutable token;
    /// @notice Receives the reward share of revenue through `IRewardPool.fund` (the
    /// RewardDistributor).
    address public immutable rewardPool;
    /// @notice Receives the rest of revenue (the DAO treasury, i.e. the timelock).
    address public immutable treasury;

    /// @dev Price, split and accrued rewards share one slot: a payment reads and writes it once.
    /// uint112 holds 5e15 NDS, far beyond the token's supply.
    struct Revenue {
        uint128 pricePerPeriod;
        uint16 rewardBps;
        uint112 accruedRewards;
    }

    Revenue private _revenue;

    /// @inheritdoc ISubscriptionManager
    mapping(address subscriber => uint64 expiry) public expiresAt;

    /// @notice A payment: `payer` bought `months` periods for `subscriber`, whose access now ends
    /// at `expiresAt`.
    event Subscribed(
        address indexed subscriber,
        address indexed payer,
        uint32 months,
        uint256 paid,
        uint64 expiresAt
    );
    /// @notice Governance changed the price of one period.
    event PriceChanged(uint256 oldPrice, uint256 newPrice);
    /// @notice Governance changed the reward pool's share of revenue.
    event RevenueSplitChanged(uint16 oldRewardBps, uint16 newRewardBps);
    /// @notice Accrued revenue was forwarded.
    event RevenueFlushed(uint256 toRewardPool, uint256 toTreasury);

    error ZeroAddress();
    error InvalidMonths(uint32 months);
    error PriceAboveMax(uint256 price, uint256 maxPrice);
    error InvalidPrice(uint256 price);
    error InvalidBps(uint16 bps);

    /// @param token_ The NDS token.
    /// @param rewardPool_ The RewardDistributor.
    /// @param treasury_ The DAO treasury (the timelock).
    /// @param owner_ Governance (the timelock).
    /// @param price Initial price per period in NDS wei (10 NDS in the default deployment).
    /// @param rewardBps_ Initial reward share of revenue in basis points.
    constructor(
        IERC20 token_,
        address rewardPool_,
        address treasury_,
        address owner_,
        uint256 price,
        uint16 rewardBps_
    ) Ownable(owner_) {
        if (address(token_) == address(0) || rewardPool_ == address(0) || treasury_ == address(0)) {
            revert ZeroAddress();
        }
        token = token_;
        rewardPool = rewardPool_;
        treasury = treasury_;
        _setPrice(price);
        _setRevenueSplit(rewardBps_);
    }

    /// @inheritdoc ISubscriptionManager
    function pricePerPeriod() external view returns (uint256) {
        return _revenue.pricePerPeriod;
    }

    /// @notice Share of each payment, in basis points, that goes to the reward pool.
    function rewardBps() external view returns (uint16) {
        return _revenue.rewardBps;
    }

    /// @notice Reward-pool share of payments received and not yet flushed, in NDS wei.
    function accruedRewards() external view returns (uint256) {
        return _revenue.accruedRewards;
    }

    /// @notice True while `subscriber` has paid access.
    function isActive(address subscriber) external view returns (bool) {
        return expiresAt[subscriber] > block.timestamp;
    }

    /// @inheritdoc ISubscriptionManager
    function subscribe(address beneficiary, uint32 months, uint256 maxPrice)
        public
        returns (uint64 newExpiry)
    {
        if (beneficiary == address(0)) revert ZeroAddress();
        if (months == 0 || months > MAX_MONTHS) revert InvalidMonths(months);
        Revenue memory revenue = _revenue;
        uint256 price = revenue.pricePerPeriod;
        if (price > maxPrice) revert PriceAboveMax(price, maxPrice);

        uint256 paid = price * months;
        uint64 current = expiresAt[beneficiary];
        uint64 start = current > block.timestamp ? current : uint64(block.timestamp);
        newExpiry = start + uint64(months) * PERIOD_64;
        expiresAt[beneficiary] = newExpiry;
        _revenue.accruedRewards =
            SafeCast.toUint112(revenue.accruedRewards + paid * revenue.rewardBps / BPS);

        emit Subscribed(beneficiary, msg.sender, months, paid, newExpiry);
        token.safeTransferFrom(msg.sender, address(this), paid);
    }

    /// @notice `subscribe` with an EIP-2612 permit instead of a prior approve. Sign the permit
    /// for `maxPrice * months` (what you authorise; saturating at 2**256 - 1), so a price cut in
    /// flight does not break it.
    /// A permit that fails (for example because someone front-ran it to the token) is ignored:
    /// the payment still goes through if the allowance is already in place.
    function subscribeWithPermit(
        address beneficiary,
        uint32 months,
        uint256 maxPrice,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (uint64 newExpiry) {
        // Saturating: a wallet passing type(uint256).max as maxPrice signs an unlimited permit.
        uint256 value = months == 0 || maxPrice <= type(uint256).max / months
            ? maxPrice * months
            : type(uint256).max;
        // The allowance may already be set (a front-run permit); subscribe fails cleanly if not.
        try IERC20Permit(address(token))
            .permit(msg.sender, address(this), value, deadline, v, r, s) {}
            catch {}
        return subscribe(beneficiary, months, maxPrice);
    }

    /// @notice Forwards accrued revenue: the reward share to the reward pool, the rest to the
    /// treasury. Anyone may call it (the control plane does before each reward epoch).
    function flushRevenue() external returns (uint256 toRewardPool, uint256 toTreasury) {
        toRewardPool = _revenue.accruedRewards;
        toTreasury = token.balanceOf(address(this)) - toRewardPool;
        _revenue.accruedRewards = 0;
        emit RevenueFlushed(toRewardPool, toTreasury);
        if (toRewardPool > 0) {
            token.forceApprove(rewardPool, toRewardPool);
            IRewardPool(rewardPool).fund(toRewardPool);
        }
        if (toTreasury > 0) token.safeTransfer(treasury, toTreasury);
    }

    /// @notice Governance sets the price of one period (in NDS wei). Subscribers protect
    /// themselves from a change in flight with `maxPrice`.
    function setPrice(uint256 newPrice) external onlyOwner {
        _setPrice(newPrice);
    }

    /// @notice Governance sets the reward pool's share of revenue, in basis points.
    function setRevenueSplit(uint16 newRewardBps) external onlyOwner {
        _setRevenueSplit(newRewardBps);
    }

    function _setPrice(uint256 newPrice) private {
        if (newPrice == 0 || newPrice > MAX_PRICE) revert InvalidPrice(newPrice);
        emit PriceChanged(_revenue.pricePerPeriod, newPrice);
        // casting to uint128 is safe: newPrice <= MAX_PRICE < 2**112
        // forge-lint: disable-next-line(unsafe-typecast)
        _revenue.pricePerPeriod = uint128(newPrice);
    }

    function _setRevenueSplit(uint16 newRewardBps) private {
        if (newRewardBps > BPS) revert InvalidBps(newRewardBps);
        emit RevenueSplitChanged(_revenue.rewardBps, newRewardBps);
        _revenue.rewardBps = newRewardBps;
    }
}
