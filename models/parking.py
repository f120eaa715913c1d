"""Smart Data Models subject `Parking`: parking spots, car parks and on-street parking zones.

Default units (UN/CEFACT common codes) of plain values: widths, lengths and heights `MTR`. Spot
numbers are counts and `occupancy` a fraction; they have no unit.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from models._base import SmartDataModel
from models._types import (
    DateTime,
    EntityRef,
    Flag,
    Fraction,
    GeoJSON,
    Integer,
    Measurable,
    NonEmptyUniqueList,
    NonNegative,
    NonNegativeInt,
    Number,
    Positive,
    PositiveInt,
    StructuredValue,
    TextRef,
    UniqueList,
    Uri,
    UriRef,
)

__all__ = [
    "MunicipalityInfo",
    "OffStreetParking",
    "OnStreetParking",
    "ParkingSpot",
    "SlotCount",
    "SpotCount",
]

PaymentMethod = Literal[
    "ByBankTransferInAdvance",
    "ByInvoice",
    "Cash",
    "CheckInAdvance",
    "COD",
    "DirectDebit",
    "GoogleCheckout",
    "PayPal",
    "PaySwarm",
]
OccupancyDetection = Literal["balancing", "manual", "modelBased", "none", "singleSpaceDetection"]
ParkingMode = Literal["echelonParking", "parallelParking", "perpendicularParking"]


class SlotCount(StructuredValue):
    """Four-wheeler slots of a parking site: available, total and occupied."""

    availableSlotNumber: Number | None = None
    totalSlotNumber: Number | None = None
    occupiedSlotNumber: Number | None = None


class SpotCount(StructuredValue):
    """Spots of one kind (two-wheeler, unclassified) of a parking site."""

    availableSpotNumber: Number | None = None
    totalSpotNumber: Number | None = None
    occupiedSpotNumber: Number | None = None


class MunicipalityInfo(StructuredValue):
    """Where a parking site sits in the municipality's administration."""

    district: str | None = None
    ulbName: str | None = None
    cityId: str | None = None
    wardId: str | None = None
    stateName: str | None = None
    cityName: str | None = None
    zoneName: str | None = None
    zoneId: str | None = None
    wardName: str | None = None
    wardNum: Number | None = None


class _Parking(SmartDataModel):
    subject: ClassVar[str] = "Parking"


class _ParkingSite(_Parking):
    """What off-street and on-street parking sites share."""

    occupancyModified: Measurable[DateTime] | None = None
    maximumParkingDuration: Measurable[str] | None = None
    outOfServiceSlotNumber: Measurable[Number] | None = None
    parkingSiteId: Measurable[str] | None = None
    observationDateTime: Measurable[DateTime] | None = None
    fourWheelerSlots: Measurable[SlotCount] | None = None
    unclassifiedSlots: Measurable[SpotCount] | None = None
    twoWheelerSlots: Measurable[SpotCount] | None = None
    municipalityInfo: Measurable[MunicipalityInfo] | None = None


class ParkingSpot(_Parking):
    """One parking spot and whether it is free (`dataModel.Parking`)."""

    schema_version: ClassVar[str] = "0.1.0"
    default_units: ClassVar[dict[str, str]] = {"width": "MTR", "length": "MTR"}

    type: Literal["ParkingSpot"] = "ParkingSpot"
    location: Measurable[GeoJSON]
    status: Measurable[Literal["closed", "free", "occupied", "unknown"]]
    category: Measurable[NonEmptyUniqueList[Literal["onStreet", "offStreet"]]]
    refParkingSite: Measurable[EntityRef]
    width: Measurable[NonNegative] | None = None
    length: Measurable[NonNegative] | None = None
    refParkingGroup: Measurable[EntityRef] | None = None
    refDevice: Measurable[NonEmptyUniqueList[EntityRef]] | None = None
    timeInstant: Measurable[DateTime] | None = None
    color: Measurable[str] | None = None
    image: Measurable[Uri] | None = None
    annotations: Measurable[list[str]] | None = None


class OffStreetParking(_ParkingSite):
    """A car park or parking lot off the street (`dataModel.Parking`)."""

    schema_version: ClassVar[str] = "0.1.3"
    default_units: ClassVar[dict[str, str]] = {
        "averageSpotWidth": "MTR",
        "averageSpotLength": "MTR",
        "maximumAllowedHeight": "MTR",
        "maximumAllowedWidth": "MTR",
    }

    type: Literal["OffStreetParking"] = "OffStreetParking"
    location: Measurable[GeoJSON]
    category: (
        Measurable[
            NonEmptyUniqueList[
                Literal[
                    "barrierAccess",
                    "feeCharged",
                    "forCustomers",
                    "forDisabled",
                    "forElectricalCharging",
                    "forEmployees",
                    "forMembers",
                    "forResidents",
                    "forStudents",
                    "forVisitors",
                    "free",
                    "freeAccess",
                    "gateAccess",
                    "guarded",
                    "ground",
                    "longTerm",
                    "mediumTerm",
                    "onlyResidents",
                    "onlyWithPermit",
                    "parkingGarage",
                    "parkingLot",
                    "private",
                    "public",
                    "publicPrivate",
                    "shortTerm",
                    "staffed",
                    "underground",
                    "urbanDeterrentParking",
                    "other",
                ]
            ]
        ]
        | None
    ) = None
    extCategory: Measurable[NonEmptyUniqueList[str]] | None = None
    allowedVehicleType: (
        Measurable[
            NonEmptyUniqueList[
                Literal[
                    "agriculturalVehicle",
                    "anyVehicle",
                    "bicycle",
                    "bus",
                    "car",
                    "caravan",
                    "carWithCaravan",
                    "carWithTrailer",
                    "constructionOrMaintenanceVehicle",
                    "lorry",
                    "moped",
                    "motorcycle",
                    "motorcycleWithSideCar",
                    "motorscooter",
                    "tanker",
                    "trailer",
                    "van",
                ]
            ]
        ]
        | None
    ) = None
    chargeType: (
        Measurable[
            NonEmptyUniqueList[
                Literal[
                    "additionalIntervalPrice",
                    "annualPayment",
                    "firstIntervalPrice",
                    "flat",
                    "free",
                    "minimum",
                    "maximum",
                    "monthlyPayment",
                    "other",
                    "seasonTicket",
                    "temporaryPrice",
                ]
            ]
        ]
        | None
    ) = None
    requiredPermit: (
        Measurable[
            UniqueList[
                Literal[
                    "employeePermit",
                    "fairPermit",
                    "governmentPermit",
                    "noPermitNeeded",
                    "residentPermit",
                    "specificIdentifiedVehiclePermit",
                    "studentPermit",
                    "visitorPermit",
                ]
            ]
        ]
        | None
    ) = None
    occupancyDetectionType: Measurable[NonEmptyUniqueList[OccupancyDetection]] | None = None
    occupiedSpotNumber: Measurable[NonNegativeInt] | None = None
    occupancy: Measurable[Fraction] | None = None
    acceptedPaymentMethod: Measurable[NonEmptyUniqueList[PaymentMethod]] | None = None
    priceRatePerMinute: Measurable[Number] | None = None
    priceCurrency: Measurable[str] | None = None
    layout: (
        Measurable[
            NonEmptyUniqueList[
                Literal[
                    "automatedParkingGarage",
                    "carports",
                    "covered",
                    "field",
                    "garageBoxes",
                    "multiLevel",
                    "multiStorey",
                    "nested",
                    "openSpace",
                    "rooftop",
                    "sheds",
                    "singleLevel",
                    "surface",
                    "other",
                ]
            ]
        ]
        | None
    ) = None
    usageScenario: (
        Measurable[
            NonEmptyUniqueList[
                Literal[
                    "automaticParkingGuidance",
                    "carSharing",
                    "dropOffWithValet",
                    "dropOffMechanical",
                    "dropOff",
                    "eventParking",
                    "kissAndRide",
                    "liftShare",
                    "loadingBay",
                    "overnightParking",
                    "parkAndCycle",
                    "parkAndRide",
                    "parkAndWalk",
                    "restArea",
                    "serviceArea",
                    "staffGuidesToSpace",
                    "truckParking",
                    "vehicleLift",
                    "other",
                ]
            ]
        ]
        | None
    ) = None
    parkingMode: Measurable[NonEmptyUniqueList[ParkingMode]] | None = None
    facilities: (
        Measurable[
            NonEmptyUniqueList[
                Literal[
                    "bikeParking",
                    "cashMachine",
                    "copyMachineOrService",
                    "defibrillator",
                    "dumpingStation",
                    "electricChargingStation",
                    "elevator",
                    "faxMachineOrService",
                    "fireHose",
                    "fireExtinguisher",
                    "fireHydrant",
                    "firstAidEquipment",
                    "freshWater",
                    "iceFreeScaffold",
                    "informationPoint",
                    "internetWireless",
                    "luggageLocker",
                    "payDesk",
                    "paymentMachine",
                    "playground",
                    "publicPhone",
                    "refuseBin",
                    "safeDeposit",
                    "shower",
                    "toilet",
                    "tollTerminal",
                    "vendingMachine",
                    "wasteDisposal",
                ]
            ]
        ]
        | None
    ) = None
    security: (
        Measurable[
            NonEmptyUniqueList[
                Literal[
                    "areaSeparatedFromSurroundings",
                    "cctv",
                    "dog",
                    "externalSecurity",
                    "fences",
                    "floodLight",
                    "guard24hours",
                    "lighting",
                    "patrolled",
                    "securityStaff",
                ]
            ]
        ]
        | None
    ) = None
    highestFloor: Measurable[Integer] | None = None
    lowestFloor: Measurable[Integer] | None = None
    totalSpotNumber: Measurable[PositiveInt] | None = None
    availableSpotNumber: Measurable[NonNegativeInt] | None = None
    extraSpotNumber: Measurable[NonNegativeInt] | None = None
    openingHours: Measurable[str] | None = None
    firstAvailableFloor: Measurable[Integer] | None = None
    specialLocation: (
        Measurable[
            NonEmptyUniqueList[
                Literal[
                    "airportTerminal",
                    "cableCarStation",
                    "campground",
                    "cinema",
                    "coachStation",
                    "conventionCentre",
                    "exhibitionCentre",
                    "ferryTerminal",
                    "hotel",
                    "market",
                    "publicTransportStation",
                    "religiousCentre",
                    "shoppingCentre",
                    "skilift",
                    "specificFacility",
                    "themePark",
                    "trainStation",
                    "vehicleOnRailTerminal",
                    "other",
                ]
            ]
        ]
        | None
    ) = None
    status: (
        Measurable[
            NonEmptyUniqueList[
                Literal[
                    "almostFull",
                    "closed",
                    "closedAbnormal",
                    "full",
                    "fullAtEntrance",
                    "open",
                    "openingTimesInForce",
                    "spacesAvailable",
                ]
            ]
        ]
        | None
    ) = None
    reservationType: (
        Measurable[NonEmptyUniqueList[Literal["mandatory", "notAvailable", "optional", "partly"]]]
        | None
    ) = None
    provider: Measurable[dict[str, Any]] | None = None
    measuresPeriod: Measurable[Number] | None = None
    measuresPeriodUnit: Measurable[str] | None = None
    contactPoint: Measurable[dict[str, Any]] | None = None
    averageSpotWidth: Measurable[NonNegative] | None = None
    averageSpotLength: Measurable[Positive] | None = None
    maximumAllowedHeight: Measurable[Positive] | None = None
    maximumAllowedWidth: Measurable[Positive] | None = None
    aggregateRating: Measurable[dict[str, Any]] | None = None
    vehicleEntranceCount: Measurable[NonNegative] | None = None
    vehicleExitCount: Measurable[NonNegative] | None = None
    accessModified: Measurable[str] | None = None
    images: Measurable[list[Uri]] | None = None
    refParkingAccess: Measurable[EntityRef] | None = None
    refParkingGroup: Measurable[EntityRef] | None = None
    refParkingSpot: Measurable[EntityRef] | None = None


class OnStreetParking(_ParkingSite):
    """A street section or zone where vehicles may park (`dataModel.Parking`)."""

    schema_version: ClassVar[str] = "0.1.4"
    default_units: ClassVar[dict[str, str]] = {
        "averageSpotWidth": "MTR",
        "averageSpotLength": "MTR",
    }

    type: Literal["OnStreetParking"] = "OnStreetParking"
    location: Measurable[GeoJSON]
    category: (
        Measurable[
            list[
                Literal[
                    "barrierAccess",
                    "blueZone",
                    "feeCharged",
                    "forDisabled",
                    "forElectricalCharging",
                    "forLoadUnload",
                    "forResidents",
                    "free",
                    "greenZone",
                    "mediumTerm",
                    "onlyWithPermit",
                    "public",
                    "shortTerm",
                    "taxiStop",
                    "underground",
                ]
            ]
        ]
        | None
    ) = None
    allowedVehicleType: (
        Measurable[
            list[
                Literal[
                    "agriculturalVehicle",
                    "anyVehicle",
                    "articulatedVehicle",
                    "bicycle",
                    "bus",
                    "car",
                    "caravan",
                    "carOrLightVehicle",
                    "carWithCaravan",
                    "carWithTrailer",
                    "constructionOrMaintenanceVehicle",
                    "fourWheelDrive",
                    "highSidedVehicle",
                    "lorry",
                    "moped",
                    "motorcycle",
                    "motorcycleWithSideCar",
                    "motorscooter",
                    "tanker",
                    "threeWheeledVehicle",
                    "trailer",
                    "tram",
                    "twoWheeledVehicle",
                    "van",
                    "vehicleWithCatalyticConverter",
                    "vehicleWithoutCatalyticConverter",
                    "vehicleWithCaravan",
                    "vehicleWithTrailer",
                    "withEvenNumberedRegistrationPlates",
                    "withOddNumberedRegistrationPlates",
                    "other",
                ]
            ]
        ]
        | None
    ) = None
    requiredPermit: Measurable[list[str]] | None = None
    permitActiveHours: Measurable[dict[str, Any]] | None = None
    occupiedSpotNumber: Measurable[Number] | None = None
    layout: Measurable[list[str]] | None = None
    chargeType: (
        Measurable[
            list[
                Literal[
                    "additionalIntervalPrice",
                    "annualPayment",
                    "firstIntervalPrice",
                    "flat",
                    "free",
                    "minimum",
                    "maximum",
                    "monthlyPayment",
                    "seasonTicket",
                    "temporaryFee",
                    "temporaryPrice",
                    "unknown",
                    "other",
                ]
            ]
        ]
        | None
    ) = None
    acceptedPaymentMethod: Measurable[PaymentMethod] | None = None
    usageScenario: (
        Measurable[
            Literal[
                "carSharing",
                "dropOff",
                "kissAndRide",
                "liftShare",
                "loadingBay",
                "overnightParking",
                "parkAndRide",
                "parkAndCycle",
                "parkAndWalk",
                "vehicleLift",
                "other",
            ]
        ]
        | None
    ) = None
    totalSpotNumber: Measurable[NonNegativeInt] | None = None
    availableSpotNumber: Measurable[NonNegativeInt] | None = None
    extraSpotNumber: Measurable[NonNegativeInt] | None = None
    occupancyDetectionType: Measurable[list[OccupancyDetection]] | None = None
    parkingMode: Measurable[ParkingMode] | None = None
    areBordersMarked: Measurable[Flag] | None = None
    averageSpotWidth: Measurable[NonNegative] | None = None
    averageSpotLength: Measurable[NonNegative] | None = None
    refParkingSpot: Measurable[Annotated[list[UriRef], Field(min_length=1)]] | None = None
    refParkingGroup: Measurable[Annotated[list[TextRef], Field(min_length=1)]] | None = None
